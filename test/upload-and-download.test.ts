import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {copyFile, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {BIN, FIXTURES, SAMPLES, TestCluster, dfs, sha256File, tempDir, waitFor} from './helpers/cluster.js'
import {HttpProxy} from './helpers/http-proxy.js'
import {startDfs, whileRunning} from './helpers/running-dfs.js'

// One cluster for the suite; every test stores the files it needs under names of its own.
describe('upload and download by the protocol', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 4})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  /** Stores a copy of a sample under `name`; returns the sample's published sha256. */
  async function putSample(sample: keyof typeof SAMPLES, name: string): Promise<string> {
    const put = await cluster.dfs(['put', join(FIXTURES, sample), '--name', name])
    assert.equal(put.code, 0, put.stderr)
    return SAMPLES[sample].sha256
  }

  test('put stores files concurrently and confirms each only once the master recorded it', async () => {
    const samples = Object.keys(SAMPLES) as Array<keyof typeof SAMPLES>
    const paths = await Promise.all(samples.map(async (sample) => {
      const path = join(work, `concurrent-${sample}`)
      await copyFile(join(FIXTURES, sample), path)
      return path
    }))
    // The master sees the client's requests through a proxy that holds back the confirmations
    // (POST /lookup): only uploads under way at the same time can all have their tickets while the
    // first confirmation waits.
    let ticketed = 0
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const proxy = await HttpProxy.start(cluster.masterUrl, {
      async beforeForward(request) {
        if (request.method === 'POST' && request.path === '/uploads/batch') ticketed += (JSON.parse(request.body) as {uploads: unknown[]}).uploads.length
        if (request.method === 'POST' && request.path === '/lookup') await released
      },
    })
    try {
      const put = startDfs(['put', ...paths, '--json', '--master', proxy.url, '--token', cluster.token])
      try {
        await whileRunning(put, 'all three uploads to have their tickets before one is confirmed', () => ticketed === samples.length)
      } finally {
        release()
      }

      const result = await put.done
      assert.equal(result.code, 0, result.stderr)
      const stored = JSON.parse(result.stdout) as Array<{name: string; size: number; sha256: string; keeper: string}>
      assert.deepEqual(stored.map((file) => file.name), samples.map((sample) => `concurrent-${sample}`))
      for (const [index, file] of stored.entries()) {
        const sample = SAMPLES[samples[index]!]
        assert.equal(file.size, sample.size)
        assert.equal(file.sha256, sample.sha256)
        // Confirmed means recorded: the master knows the file and the keeper that took it.
        const recorded = await cluster.stat(file.name)
        assert.equal(recorded.sha256, sample.sha256)
        assert.ok(recorded.replicas.some((replica) => replica.keeper === file.keeper), JSON.stringify(recorded))
      }

      const listed = (await cluster.dfsJson<Array<{name: string}>>(['ls'])).map((file) => file.name).filter((name) => name.startsWith('concurrent-'))
      assert.deepEqual(listed, stored.map((file) => file.name))
    } finally {
      await proxy.close()
    }
  })

  test('stat --json names size, sha256 and each replica with its keeper, url and liveness', async () => {
    const sha256 = await putSample('sample_1.mp4', 'stat-json.mp4')
    await cluster.waitForReplicas('stat-json.mp4', 3)
    const stat = await cluster.dfsJson<{name: string; fileId: string; size: number; sha256: string; replicas: Array<{keeper: string; url: string; alive: boolean}>}>(['stat', 'stat-json.mp4'])
    assert.equal(stat.name, 'stat-json.mp4')
    assert.equal(stat.size, SAMPLES['sample_1.mp4'].size)
    assert.equal(stat.sha256, sha256)
    assert.match(stat.fileId, /^[A-Za-z0-9_-]{1,64}$/)
    assert.equal(stat.replicas.length, 3)
    assert.equal(new Set(stat.replicas.map((replica) => replica.keeper)).size, 3)
    for (const replica of stat.replicas) {
      // Each replica names a running keeper of this cluster, at the URL it listens on.
      const keeper = cluster.keeperById(replica.keeper)
      assert.equal(replica.url, keeper.url)
      assert.equal(replica.alive, true)
    }
  })

  test('get writes a byte-exact copy to a file, and -o - writes it to stdout', async () => {
    const sha3 = await putSample('sample_3.mp4', 'get-file.mp4')
    const sha2 = await putSample('sample_2.mp4', 'get-stdout.mp4')
    const out = join(work, 'get-file.copy')
    const result = await cluster.dfs(['get', 'get-file.mp4', '-o', out])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(await sha256File(out), sha3)

    const piped = spawnSync(process.execPath, [BIN, 'get', 'get-stdout.mp4', '-o', '-', ...cluster.clientFlags], {maxBuffer: 16 * 1024 * 1024})
    assert.equal(piped.status, 0, piped.stderr.toString())
    assert.equal(createHash('sha256').update(piped.stdout).digest('hex'), sha2)
  })

  test('get of several names writes them into a directory and leaves no temp files', async () => {
    const sha1 = await putSample('sample_1.mp4', 'many-1.mp4')
    const sha2 = await putSample('sample_2.mp4', 'many-2.mp4')
    const dir = join(work, 'many')
    const result = await cluster.dfs(['get', 'many-1.mp4', 'many-2.mp4', '-o', dir])
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual((await readdir(dir)).sort(), ['many-1.mp4', 'many-2.mp4'])
    assert.equal(await sha256File(join(dir, 'many-1.mp4')), sha1)
    assert.equal(await sha256File(join(dir, 'many-2.mp4')), sha2)
  })

  test('put --name stores under another name; an existing name is refused and the stored file kept', async () => {
    const other = join(work, 'other.bin')
    await writeFile(other, 'not the video')
    const renamed = await cluster.dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--name', 'holiday.mp4'])
    assert.equal(renamed.code, 0, renamed.stderr)
    const before = await cluster.stat('holiday.mp4')

    const clash = await cluster.dfs(['put', other, '--name', 'holiday.mp4'])
    assert.notEqual(clash.code, 0)
    assert.match(clash.stderr, /already exists/)
    assert.equal(clash.stderr.trim().split('\n').length, 1, clash.stderr)
    const after = await cluster.stat('holiday.mp4')
    assert.equal(after.fileId, before.fileId)
    assert.equal(after.sha256, SAMPLES['sample_2.mp4'].sha256)
    const back = join(work, 'holiday.mp4')
    assert.equal((await cluster.dfs(['get', 'holiday.mp4', '-o', back])).code, 0)
    assert.deepEqual(await readFile(back), await readFile(join(FIXTURES, 'sample_2.mp4')))
  })

  test('rm forgets the file at once and every keeper deletes its replica', async () => {
    await putSample('sample_1.mp4', 'doomed.mp4')
    await cluster.waitForReplicas('doomed.mp4', 3)
    const before = await cluster.stat('doomed.mp4')
    const blobs = before.replicas.map((replica) => cluster.blobPath(replica.keeper, before.fileId))
    for (const blob of blobs) assert.ok(await stat(blob), `${blob} is on disk before rm`)
    const removed = await cluster.dfs(['rm', 'doomed.mp4'])
    assert.equal(removed.code, 0, removed.stderr)
    const gone = await cluster.dfs(['stat', 'doomed.mp4'])
    assert.notEqual(gone.code, 0)
    assert.match(gone.stderr, /no file named "doomed.mp4"/)
    for (const blob of blobs) {
      await waitFor(`replica file ${blob} deleted`, async () => (await stat(blob).catch(() => undefined)) === undefined)
    }
  })

  test('ls, stat and status print tables for people', async () => {
    const sha256 = await putSample('sample_1.mp4', 'tables.mp4')
    await cluster.waitForReplicas('tables.mp4', 3)
    const ls = await cluster.dfs(['ls'])
    assert.equal(ls.code, 0, ls.stderr)
    assert.match(ls.stdout, /^NAME\s+SIZE\s+REPLICAS\s+CREATED$/m)
    assert.match(ls.stdout, /^tables\.mp4\s+1\.5 MiB\s+3\/3\s+\d+s ago$/m)

    const stat = await cluster.dfs(['stat', 'tables.mp4'])
    assert.equal(stat.code, 0, stat.stderr)
    assert.match(stat.stdout, /^name:\s+tables\.mp4$/m)
    assert.match(stat.stdout, new RegExp(`^sha256:\\s+${sha256}$`, 'm'))
    assert.match(stat.stdout, /^replicas: 3 alive of 3 wanted$/m)
    assert.match(stat.stdout, /^KEEPER\s+ZONE\s+URL\s+ALIVE$/m)
    assert.match(stat.stdout, /^health:\s+HEALTHY$/m)
    for (const replica of (await cluster.stat('tables.mp4')).replicas) {
      assert.match(stat.stdout, new RegExp(`^${replica.keeper}\\s+default\\s+${replica.url}\\s+yes$`, 'm'))
    }

    const status = await cluster.dfs(['status'])
    assert.equal(status.code, 0, status.stderr)
    const lines = status.stdout.trim().split('\n')
    assert.match(lines[0]!, /^ID\s+URL\s+ZONE\s+ALIVE\s+DRAIN\s+LAST HEARTBEAT\s+TRANSFERS\s+FILES\s+STORED\s+FREE$/)
    assert.equal(lines.length, 1 + cluster.keepers.length + 1)
    assert.match(lines.at(-1)!, new RegExp(`^total\\s+${cluster.keepers.length} of ${cluster.keepers.length}\\s+\\d+\\s+\\d+\\s+\\S+ \\S+\\s+\\S+ \\S+$`))
    for (const keeper of cluster.keepers) assert.ok(lines.some((line) => new RegExp(`^${keeper.id}\\s+${keeper.url}\\s+default\\s+yes\\s+\\d+s ago\\s+\\d+\\s`).test(line)), `${keeper.id} in\n${status.stdout}`)
    const json = await cluster.dfsJson<{keepers: Array<{id: string; url: string; alive: boolean}>}>(['status'])
    assert.deepEqual(json.keepers.map((keeper) => keeper.id).sort(), cluster.keepers.map((keeper) => keeper.id).sort())
    assert.ok(json.keepers.every((keeper) => keeper.alive))
  })

  test('the client finds the master through DFS_MASTER', async () => {
    await putSample('sample_2.mp4', 'env-master.mp4')
    const result = await dfs(['ls', '--json'], {env: {DFS_MASTER: cluster.masterUrl, DFS_TOKEN: cluster.token}})
    assert.equal(result.code, 0, result.stderr)
    assert.ok((JSON.parse(result.stdout) as Array<{name: string}>).some((file) => file.name === 'env-master.mp4'), result.stdout)
  })
})
