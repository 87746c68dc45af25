import assert from 'node:assert/strict'
import {readFile, readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {FIXTURES, SAMPLES, TestCluster, dfs, sha256File, tempDir} from './helpers/cluster.js'

describe('upload and download by the protocol', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 4})
    work = await tempDir()
  })
  after(() => cluster.stop())

  test('put stores files concurrently and confirms each only once the master recorded it', async () => {
    const paths = Object.keys(SAMPLES).map((name) => join(FIXTURES, name))
    const put = await cluster.dfsJson<Array<{name: string; size: number; sha256: string; keeper: string}>>(['put', ...paths])
    assert.equal(put.length, 3)
    for (const stored of put) {
      const sample = SAMPLES[stored.name as keyof typeof SAMPLES]
      assert.equal(stored.size, sample.size)
      assert.equal(stored.sha256, sample.sha256)
      // Confirmed means recorded: the master knows the file and the keeper that took it.
      const stat = await cluster.stat(stored.name)
      assert.equal(stat.sha256, sample.sha256)
      assert.ok(stat.replicas.some((replica) => replica.keeper === stored.keeper))
    }

    const listed = await cluster.dfsJson<Array<{name: string; size: number}>>(['ls'])
    assert.deepEqual(listed.map((file) => file.name), ['sample_1.mp4', 'sample_2.mp4', 'sample_3.mp4'])
  })

  test('stat --json names size, sha256 and each replica with its keeper, url and liveness', async () => {
    const stat = await cluster.dfsJson<{name: string; size: number; sha256: string; replicas: Array<{keeper: string; url: string; alive: boolean}>}>(['stat', 'sample_1.mp4'])
    assert.equal(stat.name, 'sample_1.mp4')
    assert.equal(stat.size, SAMPLES['sample_1.mp4'].size)
    assert.ok(stat.replicas.length >= 1)
    for (const replica of stat.replicas) {
      assert.match(replica.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.equal(typeof replica.alive, 'boolean')
      assert.equal(typeof replica.keeper, 'string')
    }
  })

  test('get writes a byte-exact copy to a file, and -o - writes it to stdout', async () => {
    const out = join(work, 'copy.mp4')
    const result = await cluster.dfs(['get', 'sample_3.mp4', '-o', out])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(await sha256File(out), SAMPLES['sample_3.mp4'].sha256)

    const child = await import('node:child_process')
    const piped = child.spawnSync(process.execPath, [join(FIXTURES, '../../bin/run.js'), 'get', 'sample_2.mp4', '-o', '-', '--master', cluster.masterUrl], {maxBuffer: 16 * 1024 * 1024})
    assert.equal(piped.status, 0, piped.stderr.toString())
    const {createHash} = await import('node:crypto')
    assert.equal(createHash('sha256').update(piped.stdout).digest('hex'), SAMPLES['sample_2.mp4'].sha256)
  })

  test('get of several names writes them into a directory and leaves no temp files', async () => {
    const dir = join(work, 'many')
    const result = await cluster.dfs(['get', 'sample_1.mp4', 'sample_2.mp4', '-o', dir])
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual((await readdir(dir)).sort(), ['sample_1.mp4', 'sample_2.mp4'])
    assert.equal(await sha256File(join(dir, 'sample_1.mp4')), SAMPLES['sample_1.mp4'].sha256)
  })

  test('put --name stores under another name; an existing name is refused and the stored file kept', async () => {
    const other = join(work, 'other.bin')
    await import('node:fs/promises').then((fs) => fs.writeFile(other, 'not the video'))
    const renamed = await cluster.dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--name', 'holiday.mp4'])
    assert.equal(renamed.code, 0, renamed.stderr)

    const clash = await cluster.dfs(['put', other, '--name', 'holiday.mp4'])
    assert.notEqual(clash.code, 0)
    assert.match(clash.stderr, /already exists/)
    assert.equal(clash.stderr.trim().split('\n').length, 1, clash.stderr)
    const stat = await cluster.stat('holiday.mp4')
    assert.equal(stat.sha256, SAMPLES['sample_2.mp4'].sha256)
    const back = join(work, 'holiday.mp4')
    assert.equal((await cluster.dfs(['get', 'holiday.mp4', '-o', back])).code, 0)
    assert.deepEqual(await readFile(back), await readFile(join(FIXTURES, 'sample_2.mp4')))
  })

  test('rm forgets the file at once and every keeper deletes its replica', async () => {
    await cluster.waitForReplicas('holiday.mp4', 3)
    const before = await cluster.stat('holiday.mp4')
    const removed = await cluster.dfs(['rm', 'holiday.mp4'])
    assert.equal(removed.code, 0, removed.stderr)
    const gone = await cluster.dfs(['stat', 'holiday.mp4'])
    assert.notEqual(gone.code, 0)
    assert.match(gone.stderr, /no file named "holiday.mp4"/)
    const {waitFor} = await import('./helpers/cluster.js')
    const {stat} = await import('node:fs/promises')
    for (const replica of before.replicas) {
      await waitFor(`replica file ${replica.path} deleted`, async () => (await stat(replica.path).catch(() => undefined)) === undefined)
    }
  })

  test('ls, stat and status print tables for people', async () => {
    const ls = await cluster.dfs(['ls'])
    assert.match(ls.stdout, /^NAME\s+SIZE\s+REPLICAS/m)
    assert.match(ls.stdout, /sample_1\.mp4/)
    const status = await cluster.dfs(['status'])
    assert.match(status.stdout, /^ID\s+URL\s+ALIVE\s+LAST HEARTBEAT\s+FILES\s+STORED\s+FREE/m)
    assert.equal(status.stdout.trim().split('\n').length, 5)
    const json = await cluster.dfsJson<{keepers: Array<{id: string; url: string; alive: boolean}>}>(['status'])
    assert.equal(json.keepers.length, 4)
    assert.ok(json.keepers.every((keeper) => keeper.alive))
  })

  test('the client finds the master through DFS_MASTER', async () => {
    const result = await dfs(['ls', '--json'], {env: {DFS_MASTER: cluster.masterUrl}})
    assert.equal(result.code, 0, result.stderr)
    assert.ok((JSON.parse(result.stdout) as unknown[]).length >= 3)
  })
})
