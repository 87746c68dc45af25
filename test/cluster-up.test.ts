import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, test} from 'node:test'

import {verifyClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {isRunning, readClusterState} from '../src/roles/cluster/local-cluster.js'
import {BIN, FIXTURES, SAMPLES, dfs, dfsJson, sha256File, tempDir} from './helpers/cluster.js'
import {useTestConfigDir} from './helpers/cluster-up-process.js'

const FAST_FLAGS = ['--heartbeat-interval', '200ms', '--heartbeat-timeout', '1s', '--replication-interval', '1s']

/** A running `dfs cluster up`: the process, everything it printed, and what its ready block says. */
interface ClusterUp {
  child: ChildProcess
  output: () => string
  exit: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  masterUrl: string
  keepers: Array<{name: string; url: string; id: string}>
}

// The CLI finds each cluster's token through the config dir cluster up records it in.
before(useTestConfigDir)

const started: Array<{child: ChildProcess; dir: string}> = []
const dirs: string[] = []

// Whatever happened, leave no process behind: the cluster process, then any child it recorded.
after(async () => {
  for (const {child, dir} of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    const state = await readClusterState(dir)
    // Started under `script`, the cluster process is not `child` itself.
    if (state && isRunning(state.pid)) process.kill(state.pid, 'SIGKILL')
    for (const node of state?.nodes ?? []) {
      if (node.pid !== undefined && isRunning(node.pid)) process.kill(node.pid, 'SIGKILL')
    }
  }

  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

test('cluster up serves files, stops every child on SIGINT, and brings the same files back on the same --dir', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)

  const first = await clusterUp(dir, 3)
  assert.equal(first.keepers.length, 3)
  assert.match(first.masterUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.doesNotMatch(first.masterUrl, /:0$/, 'the printed URL has the real port, not 0')
  for (const name of ['master', 'keeper-1', 'keeper-2', 'keeper-3']) {
    assert.match(await readFile(join(dir, 'logs', `${name}.log`), 'utf8'), /listening on http/, `${name}.log has the child's output`)
  }

  // No --token: the CLI finds the cluster's admin token through the record cluster up keeps for its URL.
  const known = join(process.env.XDG_CONFIG_HOME!, 'dfs', 'clusters.json')
  assert.equal((await stat(known)).mode & 0o777, 0o600, 'only this user reads the record')
  assert.deepEqual(JSON.parse(await readFile(known, 'utf8')).clusters[first.masterUrl], {tokenFile: join(dir, 'token')})
  const put = await dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--master', first.masterUrl])
  assert.equal(put.code, 0, put.stderr)
  const listed = await dfsJson<Array<{name: string; sha256: string}>>(['ls', '--master', first.masterUrl])
  assert.deepEqual(listed.map(({name, sha256}) => ({name, sha256})), [{name: 'sample_2.mp4', sha256: SAMPLES['sample_2.mp4'].sha256}])

  const state = await readClusterState(dir)
  assert.ok(state, 'cluster.json is written while the cluster runs')
  const childPids = state.nodes.map((node) => node.pid).filter((pid): pid is number => pid !== undefined)
  assert.equal(childPids.length, 4)
  assert.ok(childPids.every((pid) => isRunning(pid)))

  first.child.kill('SIGINT')
  const firstExit = await first.exit
  assert.deepEqual(firstExit, {code: 0, signal: null}, first.output())
  assert.match(first.output(), /cluster stopped/)
  // The children are reaped by the cluster process before it exits, so none can be left running.
  assert.deepEqual(childPids.filter((pid) => isRunning(pid)), [], 'no child is left running')
  await assert.rejects(fetch(`${first.masterUrl}/health`), 'the master no longer answers')
  assert.equal(await readClusterState(dir), undefined, 'cluster.json is removed on a clean stop')

  const second = await clusterUp(dir, 3)
  try {
    assert.deepEqual(
      second.keepers.map((keeper) => keeper.id).sort(),
      first.keepers.map((keeper) => keeper.id).sort(),
      'the keepers come back with their ids',
    )
    const relisted = await dfsJson<Array<{name: string; sha256: string}>>(['ls', '--master', second.masterUrl])
    assert.deepEqual(relisted.map(({name}) => name), ['sample_2.mp4'])
    const out = join(dir, 'copy.mp4')
    const got = await dfs(['get', 'sample_2.mp4', '-o', out, '--master', second.masterUrl])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), SAMPLES['sample_2.mp4'].sha256)
  } finally {
    second.child.kill('SIGINT')
  }

  assert.deepEqual(await second.exit, {code: 0, signal: null}, second.output())
})

test('cluster up refuses a directory a running cluster already uses', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)
  const running = await clusterUp(dir, 1)
  try {
    const again = await dfs(['cluster', 'up', '--keepers', '1', '--port', '0', '--dir', dir])
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /already running from/)
    // The refused one touched nothing: the first cluster still serves.
    assert.equal((await fetch(`${running.masterUrl}/health`)).status, 200)
  } finally {
    running.child.kill('SIGTERM')
  }

  assert.deepEqual(await running.exit, {code: 0, signal: null}, running.output())
})

test('cluster up makes the cluster key on its first run and keeps it, gives it to every child, and writes an admin token', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)
  const secretPath = join(dir, 'secret')
  const tokenPath = join(dir, 'token')

  const first = await clusterUp(dir, 1)
  let secret: string
  let firstToken: string
  try {
    assert.equal((await stat(secretPath)).mode & 0o777, 0o600)
    assert.equal((await stat(tokenPath)).mode & 0o777, 0o600)
    secret = await readFile(secretPath, 'utf8')
    firstToken = (await readFile(tokenPath, 'utf8')).trim()
    const key = await ClusterKey.load(secretPath)
    assert.equal((await verifyClientToken(key, firstToken, () => false)).scope, 'admin')
    assert.match(first.output(), /^ {2}key\s+\S*secret {2}\(--secret-file for more keepers\)$/m)
    assert.ok(!first.output().includes(secret.trim()) && !first.output().includes(firstToken), 'neither the key nor the token is printed')
    // The first hint is the dashboard, and how to log in to it.
    const hint = /^Open the dashboard: (http:\/\/127\.0\.0\.1:\d+)\/ {2}\(log in with the admin token in \S*token\)$/m.exec(first.output())
    assert.ok(hint, `no dashboard hint in:\n${first.output()}`)
    assert.ok(first.output().indexOf(hint[0]) < first.output().indexOf('Try it from another terminal'), 'the dashboard comes first')
    const page = await fetch(`${hint[1]}/`)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<title>dfs<\/title>/)

    const state = await readClusterState(dir)
    const children = state!.nodes.filter((node) => node.pid !== undefined)
    assert.equal(children.length, 2)
    for (const node of children) {
      const args = (await readFile(`/proc/${node.pid}/cmdline`, 'utf8')).split('\0')
      assert.equal(args[args.indexOf('--secret-file') + 1], secretPath, `${node.name} runs with the cluster key`)
    }
  } finally {
    first.child.kill('SIGTERM')
  }

  assert.deepEqual(await first.exit, {code: 0, signal: null}, first.output())
  const second = await clusterUp(dir, 1)
  try {
    assert.equal(await readFile(secretPath, 'utf8'), secret, 'the key is kept')
    const secondToken = (await readFile(tokenPath, 'utf8')).trim()
    assert.notEqual(secondToken, firstToken, 'a fresh token at every start')
    assert.equal((await verifyClientToken(await ClusterKey.load(secretPath), secondToken, () => false)).scope, 'admin')
  } finally {
    second.child.kill('SIGTERM')
  }

  assert.deepEqual(await second.exit, {code: 0, signal: null}, second.output())
})

test('cluster up refuses a key file that others can read', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)
  await writeFile(join(dir, 'secret'), Buffer.alloc(32, 1).toString('base64url') + '\n', {mode: 0o644})
  // Should it start after all, it is stopped at once (and its children with it): the test fails, not hangs.
  const child = spawn(process.execPath, [BIN, 'cluster', 'up', '--keepers', '1', '--port', '0', '--dir', dir], {stdio: ['ignore', 'pipe', 'pipe']})
  started.push({child, dir})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
    if (/listening on/.test(stdout)) child.kill('SIGTERM')
  })
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  const [code] = (await once(child, 'exit')) as [number | null]
  assert.doesNotMatch(stdout, /listening on/, 'nothing started')
  assert.notEqual(code, 0)
  assert.match(stderr, /key file .*secret is open to group or others \(mode 0644\): run chmod 600/)
  assert.equal(await readClusterState(dir), undefined, 'nothing was started')
})

test('cluster up on a terminal of 0 columns prints whole lines, and its hints run with npx', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)
  // `script` with no terminal of its own gives the child a pty nobody sized: 0 columns (COLUMNS=0 as well).
  const command = [process.execPath, BIN, 'cluster', 'up', '--keepers', '1', '--port', '0', '--dir', dir, ...FAST_FLAGS].map((arg) => `'${arg}'`).join(' ')
  const child = spawn('script', ['-qfec', command, '/dev/null'], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, COLUMNS: '0'}})
  started.push({child, dir})
  let screen = ''
  let stopping = false
  child.stdout!.on('data', (chunk: Buffer) => {
    screen += chunk.toString('utf8')
    // Once ready, stopped once as a user stops it (SIGINT goes to the cluster process, not to `script`).
    if (stopping || !screen.includes('Press Ctrl-C to stop')) return
    stopping = true
    void readClusterState(dir).then((state) => state && process.kill(state.pid, 'SIGINT'))
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  assert.equal(code, 0, screen)
  const lines = screen.split(/\r?\n/)
  assert.ok(lines.some((line) => /keeper-1 \(\S+\) listening on http/.test(line)), `the progress shows whole lines:\n${screen}`)
  assert.ok(lines.some((line) => line.startsWith('  export DFS_MASTER=http')), screen)
  const hints = lines.filter((line) => /^ {2}(\S+ )?dfs (put|ls|get|status)\b/.test(line))
  assert.equal(hints.length, 4, screen)
  for (const hint of hints) assert.match(hint, /^ {2}npx dfs /, 'a command that works right after npm ci, with no dfs on PATH')
})

/** Starts `dfs cluster up` and resolves once it printed its ready block. */
async function clusterUp(dir: string, keepers: number): Promise<ClusterUp> {
  const child = spawn(process.execPath, [BIN, 'cluster', 'up', '--keepers', String(keepers), '--port', '0', '--dir', dir, ...FAST_FLAGS], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.push({child, dir})
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')))
  const exit = once(child, 'exit').then(([code, signal]) => ({code: code as number | null, signal: signal as NodeJS.Signals | null}))

  // Waits for the ready block; fails at once if the process exits first, and after 60 s only as a guard.
  await new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`cluster up printed no ready block within 60 s:\n${output}`)), 60_000)
    child.stdout!.on('data', () => {
      if (!output.includes('Press Ctrl-C to stop')) return
      clearTimeout(guard)
      resolve()
    })
    void exit.then(({code, signal}) => {
      clearTimeout(guard)
      reject(new Error(`cluster up exited (${code ?? signal}) before it was ready:\n${output}`))
    })
  })

  const masterUrl = /export DFS_MASTER=(\S+)/.exec(output)?.[1]
  assert.ok(masterUrl, `no master URL in:\n${output}`)
  const keeperRows = [...output.matchAll(/^ {2}(keeper-\d+)\s+(http\S+)\s+\((\S+)\)$/gm)].map((match) => ({name: match[1]!, url: match[2]!, id: match[3]!}))
  return {child, output: () => output, exit, masterUrl, keepers: keeperRows}
}
