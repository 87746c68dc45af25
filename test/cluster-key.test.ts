import assert from 'node:assert/strict'
import {chmod, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, afterEach, before, describe, test} from 'node:test'
import {inspect} from 'node:util'

import {ClusterKey, checkListenWithoutKey, isLoopback} from '../src/lib/cluster-key.js'
import {ServerProcess, dfs, tempDir, type RunResult} from './helpers/cluster.js'
import {runRefusedStart} from './helpers/refused-start.js'

function assertOneLineError(result: RunResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a failure, got stdout ${result.stdout}`)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.match(lines[0]!, pattern)
}

describe('cluster key files', () => {
  let work: string
  const servers: ServerProcess[] = []

  before(async () => {
    work = await tempDir('dfs-key-')
  })
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop('SIGKILL')))
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  /** Starts a server; `secretEnv` is put in DFS_SECRET_FILE of the child (spawn copies the environment at once). */
  async function start(args: string[], secretEnv?: string): Promise<ServerProcess> {
    if (secretEnv !== undefined) process.env.DFS_SECRET_FILE = secretEnv
    try {
      const server = ServerProcess.start(args)
      delete process.env.DFS_SECRET_FILE
      servers.push(await server)
      return servers.at(-1)!
    } finally {
      delete process.env.DFS_SECRET_FILE
    }
  }

  test('dfs secret create writes a 32-byte key, mode 0600, never printed, and keeps an existing file unless --force', async () => {
    const file = join(work, 'created')
    const created = await dfs(['secret', 'create', file])
    assert.equal(created.code, 0, created.stderr)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const text = await readFile(file, 'utf8')
    assert.match(text, /^[A-Za-z0-9_-]{43}\n$/)
    assert.equal(Buffer.from(text.trim(), 'base64url').length, 32)
    assert.ok(!created.stdout.includes(text.trim()) && !created.stderr.includes(text.trim()), 'the key is not printed')

    assertOneLineError(await dfs(['secret', 'create', file]), /exists; keep it, or pass --force/)
    assert.equal(await readFile(file, 'utf8'), text, 'the existing key is kept')

    const forced = await dfs(['secret', 'create', file, '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.notEqual(await readFile(file, 'utf8'), text)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assertOneLineError(await dfs(['secret', 'create', join(work, 'no-such-dir', 'key')]), /directory does not exist/)
  })

  test('master and keeper load --secret-file (or DFS_SECRET_FILE), and refuse a key file others can read, a short key, or garbage', async () => {
    const file = join(work, 'served')
    assert.equal((await dfs(['secret', 'create', file])).code, 0)
    const master = await start(['master', '--port', '0', '--data', join(work, 'm1'), '--secret-file', file])
    await start(['keeper', '--master', master.url, '--data', join(work, 'k1')], file)

    await chmod(file, 0o644)
    assertOneLineError(await runRefusedStart(['master', '--port', '0', '--data', join(work, 'm2'), '--secret-file', file]), /key file .*served is open to group or others \(mode 0644\): run chmod 600/)
    assertOneLineError(await runRefusedStart(['keeper', '--master', master.url, '--data', join(work, 'k2')], {DFS_SECRET_FILE: file}), /mode 0644/)
    await chmod(file, 0o640)
    assertOneLineError(await runRefusedStart(['master', '--port', '0', '--data', join(work, 'm2'), '--secret-file', file]), /mode 0640/)

    const short = join(work, 'short')
    await writeFile(short, Buffer.alloc(16, 7).toString('base64') + '\n', {mode: 0o600})
    assertOneLineError(await runRefusedStart(['master', '--port', '0', '--data', join(work, 'm2'), '--secret-file', short]), /holds a 16-byte key; at least 32 bytes are needed/)
    const garbage = join(work, 'garbage')
    await writeFile(garbage, 'this is not a key at all, it has spaces\n', {mode: 0o600})
    assertOneLineError(await runRefusedStart(['master', '--port', '0', '--data', join(work, 'm2'), '--secret-file', garbage]), /is not one line of base64/)
    assertOneLineError(await runRefusedStart(['master', '--port', '0', '--data', join(work, 'm2'), '--secret-file', join(work, 'missing')]), /cannot read key file .*missing: ENOENT/)
  })

  test('without a key, a master or keeper listens on loopback only, unless --insecure, which it says loudly', async () => {
    assertOneLineError(await runRefusedStart(['master', '--host', '0.0.0.0', '--port', '0', '--data', join(work, 'm3')]), /refusing to listen on 0\.0\.0\.0 without a cluster key/)
    assertOneLineError(await runRefusedStart(['keeper', '--host', '0.0.0.0', '--port', '0', '--data', join(work, 'k3')]), /refusing to listen on 0\.0\.0\.0 without a cluster key/)

    const insecure = await start(['master', '--host', '0.0.0.0', '--port', '0', '--data', join(work, 'm4'), '--insecure'])
    assert.ok(insecure.logs.some((line) => /^WARNING: this master listens on 0\.0\.0\.0 with no cluster key \(--insecure\)/.test(line)), insecure.logs.join('\n'))
    assert.equal((await fetch(`${insecure.url}/health`)).status, 200)

    const loopback = await start(['master', '--port', '0', '--data', join(work, 'm5')])
    assert.ok(!loopback.logs.some((line) => line.startsWith('WARNING')), loopback.logs.join('\n'))
  })

  test('which addresses count as loopback, and a key lifts the restriction', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopback(host), host)
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '::ffff:10.0.0.1', '']) assert.ok(!isLoopback(host), host)
    assert.throws(() => checkListenWithoutKey('master', '10.0.0.1', undefined, false), /refusing to listen/)
    assert.match(checkListenWithoutKey('keeper', '10.0.0.1', undefined, true)!, /^WARNING/)
    assert.equal(checkListenWithoutKey('master', '127.0.0.1', undefined, false), undefined)
  })

  test('a loaded key shows only its fingerprint, and the fingerprint tells keys apart', async () => {
    const bytes = Buffer.alloc(32, 0x42)
    const key = await ClusterKey.fromBytes(bytes)
    for (const shown of [inspect(key, {showHidden: true, depth: 10}), JSON.stringify(key), String(Object.values(key))]) {
      assert.ok(!shown.includes(bytes.toString('base64')) && !shown.includes(bytes.toString('hex')), shown)
    }

    assert.match(key.id, /^[0-9a-f]{12}$/)
    assert.equal((await ClusterKey.fromBytes(Buffer.alloc(32, 0x42))).id, key.id)
    assert.notEqual((await ClusterKey.fromBytes(Buffer.alloc(32, 0x43))).id, key.id)
    await assert.rejects(ClusterKey.fromBytes(Buffer.alloc(31)), /at least 32 bytes/)
  })
})
