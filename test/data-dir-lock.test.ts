import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {after, afterEach, before, describe, test} from 'node:test'

import {LOCK_FILE, lockDataDir, lockOwner, processStartTime} from '../src/lib/data-dir-lock.js'
import {ServerProcess, tempDir, type RunResult} from './helpers/cluster.js'
import {runRefusedStart} from './helpers/refused-start.js'

describe('a data dir is used by one process at a time', () => {
  let work: string
  const servers: ServerProcess[] = []

  before(async () => {
    work = await tempDir('dfs-lock-')
  })
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop('SIGKILL')))
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  async function master(dir: string): Promise<ServerProcess> {
    const server = await ServerProcess.start(['master', '--port', '0', '--data', dir])
    servers.push(server)
    return server
  }

  async function keeper(masterUrl: string, dir: string): Promise<ServerProcess> {
    const server = await ServerProcess.start(['keeper', '--master', masterUrl, '--data', dir, '--heartbeat-interval', '200ms'])
    servers.push(server)
    return server
  }

  function assertInUse(result: RunResult, role: string, pid: number): void {
    assert.notEqual(result.code, 0, result.stdout)
    const lines = result.stderr.trim().split('\n')
    assert.equal(lines.length, 1, result.stderr)
    assert.match(lines[0]!, new RegExp(`is in use by dfs ${role} pid ${pid} `))
  }

  /** A pid that belonged to a process which has exited. */
  async function deadPid(): Promise<number> {
    const child = spawn(process.execPath, ['-e', ''])
    await once(child, 'exit')
    return child.pid!
  }

  async function writeLock(dir: string, owner: Record<string, unknown>): Promise<void> {
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({role: 'master', host: hostname(), startedAt: new Date().toISOString(), nonce: 'n', ...owner}))
  }

  test('a second master or keeper on a data dir in use fails with one line, and the first keeps serving', async () => {
    const masterDir = join(work, 'busy-master')
    const first = await master(masterDir)
    assertInUse(await runRefusedStart(['master', '--port', '0', '--data', masterDir]), 'master', first.child.pid!)
    // Whatever the role: a keeper on the master's directory is refused as well.
    assertInUse(await runRefusedStart(['keeper', '--master', first.url, '--data', masterDir]), 'master', first.child.pid!)

    const keeperDir = join(work, 'busy-keeper')
    const firstKeeper = await keeper(first.url, keeperDir)
    assertInUse(await runRefusedStart(['keeper', '--master', first.url, '--data', keeperDir, '--port', '0']), 'keeper', firstKeeper.child.pid!)

    assert.equal((await fetch(`${first.url}/health`)).status, 200)
    assert.equal((await fetch(`${firstKeeper.url}/health`)).status, 200)
  })

  test('a graceful stop releases the lock; a killed process leaves a stale one that the next start takes over', async () => {
    const dir = join(work, 'restarts')
    const first = await master(dir)
    assert.equal((await lockOwner(dir))?.pid, first.child.pid)
    assert.equal(await first.stop('SIGTERM'), 0)
    assert.deepEqual(await readdir(dir).then((entries) => entries.filter((entry) => entry.includes(LOCK_FILE))), [], 'no lock file is left')

    const second = await master(dir)
    await second.stop('SIGKILL')
    assert.equal((await lockOwner(dir))?.pid, second.child.pid, 'a killed master leaves its lock behind')

    const third = await master(dir)
    assert.equal((await lockOwner(dir))?.pid, third.child.pid)
    assert.equal((await fetch(`${third.url}/health`)).status, 200)
  })

  test('a lock naming a live process is refused; one whose pid now belongs to another process, or that is garbled, is taken over', async () => {
    const dir = join(work, 'pids')
    await master(dir).then((server) => server.stop('SIGTERM'))

    // This test's own process is alive: its lock holds.
    await writeLock(dir, {pid: process.pid, procStart: processStartTime(process.pid)})
    assertInUse(await runRefusedStart(['master', '--port', '0', '--data', dir]), 'master', process.pid)

    // The same pid, but a process that started at another time: the pid was recycled.
    await writeLock(dir, {pid: process.pid, procStart: '1'})
    const recycled = await master(dir)
    assert.equal((await lockOwner(dir))?.pid, recycled.child.pid)
    await recycled.stop('SIGKILL')

    await writeFile(join(dir, LOCK_FILE), 'not a lock')
    const garbled = await master(dir)
    assert.equal((await lockOwner(dir))?.pid, garbled.child.pid)
  })

  test('of several masters started at once on a stale lock, exactly one runs', async () => {
    const dir = join(work, 'race')
    await master(dir).then((server) => server.stop('SIGTERM'))
    await writeLock(dir, {pid: await deadPid()})

    const outcomes = await Promise.all(
      Array.from({length: 4}, () =>
        ServerProcess.start(['master', '--port', '0', '--data', dir]).then(
          (server) => {
            servers.push(server)
            return {server}
          },
          (error: Error) => ({error: error.message}),
        ),
      ),
    )
    const running = outcomes.flatMap((outcome) => ('server' in outcome ? [outcome.server] : []))
    assert.equal(running.length, 1, JSON.stringify(outcomes.map((outcome) => ('error' in outcome ? outcome.error : 'running'))))
    for (const outcome of outcomes) if ('error' in outcome) assert.match(outcome.error, /is in use by dfs master pid \d+/)
    assert.equal((await lockOwner(dir))?.pid, running[0]!.child.pid)

    assert.equal(await running[0]!.stop('SIGTERM'), 0)
    assert.deepEqual(await readdir(dir).then((entries) => entries.filter((entry) => entry.includes(LOCK_FILE))), [], 'no lock, claim or temp file is left')
  })

  test('many lockers racing for one stale lock in one process: exactly one wins, every round', async () => {
    const dir = join(work, 'inproc')
    await mkdir(dir)
    for (let round = 0; round < 20; round++) {
      await writeLock(dir, {pid: await deadPid(), nonce: `stale-${round}`})
      const outcomes = await Promise.allSettled(Array.from({length: 8}, () => lockDataDir(dir, 'tester')))
      const held = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []))
      assert.equal(held.length, 1, `round ${round}: ${held.length} lockers hold the lock`)
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') assert.match(String(outcome.reason), /is in use by dfs tester pid/)
      }
      await held[0]!.release()
    }
    assert.deepEqual(await readdir(dir).then((entries) => entries.filter((entry) => entry.includes(LOCK_FILE))), [])
  })
})
