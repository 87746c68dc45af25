// POST /files/read: many small files in one answer, as `dfs get` of many names reads them. Real
// master and keepers with a cluster key; the keepers' own metrics witness the batches.

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import {ClusterKey} from '../src/lib/cluster-key.js'
import {mintGrant} from '../src/lib/grants.js'
import {FRAMES_TYPE, MAX_BATCH_READ} from '../src/lib/protocol.js'
import {flipEvery} from './chaos/disk-faults.js'
import {FAST, ServerProcess, bearer, clusterPerSuite, clusterPerTest, dfs, dfsJson, randomFile, sha256File, tempDir, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'
import {parseMetrics, sumOf} from './helpers/prometheus-text.js'

const KiB = 1024

interface Frame {
  head: {fileId: string; size?: number; sha256?: string; error?: string; message?: string}
  bytes: Buffer
}

/** A batch read's answer cut into its frames (a header line, then `size` bytes), read whole: the test's files are small. */
function framesOf(body: Buffer): Frame[] {
  const frames: Frame[] = []
  let at = 0
  while (at < body.length) {
    const end = body.indexOf(10, at)
    assert.ok(end !== -1, 'every frame header ends with a newline')
    const head = JSON.parse(body.subarray(at, end).toString('utf8')) as Frame['head']
    const size = head.size ?? 0
    frames.push({head, bytes: body.subarray(end + 1, end + 1 + size)})
    at = end + 1 + size
  }

  assert.equal(at, body.length, 'the answer ends where its last frame does')
  return frames
}

async function readBatch(url: string, body: unknown): Promise<{status: number; type: string | null; body: Buffer}> {
  const response = await fetch(`${url}/files/read`, {method: 'POST', headers: {'content-type': 'application/json'}, body: typeof body === 'string' ? body : JSON.stringify(body)})
  return {status: response.status, type: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer())}
}

/** Every keeper's metrics, summed: batch requests, files served and refused in them, and GETs of files. */
async function keeperCounts(cluster: TestCluster, only?: (id: string) => boolean): Promise<{batches: number; served: number; refused: number; gets: number; copies: number}> {
  const counts = {batches: 0, served: 0, refused: 0, gets: 0, copies: 0}
  for (const keeper of cluster.keepers.filter((candidate) => !only || only(candidate.id))) {
    const response = await fetch(`${keeper.url}/metrics`, {headers: bearer(cluster.token)})
    assert.equal(response.status, 200)
    const samples = parseMetrics(await response.text())
    counts.batches += sumOf(samples, 'dfs_keeper_batch_reads_total')
    counts.served += sumOf(samples, 'dfs_keeper_batch_read_files_total', {result: 'served'})
    counts.refused += sumOf(samples, 'dfs_keeper_batch_read_files_total', {result: 'refused'})
    counts.gets += sumOf(samples, 'dfs_keeper_download_duration_seconds_count')
    // Copies the keepers themselves asked of batch reads (repairs on the master's orders).
    counts.copies += sumOf(samples, 'dfs_keeper_batch_copies_total', {result: 'stored'})
  }

  return counts
}

/** Stores `count` random files `PREFIX-i.bin` of `size(i)` bytes with one `dfs put`, every replica made; returns name → sha256. */
async function store(cluster: TestCluster, work: string, prefix: string, count: number, size: (index: number) => number): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  const paths: string[] = []
  for (let index = 0; index < count; index++) {
    const name = `${prefix}-${index}.bin`
    paths.push(join(work, name))
    files.set(name, await randomFile(join(work, name), size(index)))
  }

  const put = await cluster.dfs(['put', ...paths, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  return files
}

interface GotFile {
  name: string
  sha256: string
  path: string
  sources: Array<{keeper: string; ranges: number}>
  corruptReplicas: string[]
}

/** `dfs get` of every name into `out` (--json); each file is checked byte for byte against its source's sha256. */
async function getAll(cluster: TestCluster, files: Map<string, string>, out: string): Promise<GotFile[]> {
  const got = await cluster.dfsJson<GotFile[]>(['get', ...files.keys(), '-o', out])
  assert.equal(got.length, files.size)
  for (const [name, sha256] of files) {
    assert.equal(await sha256File(join(out, name)), sha256, `${name} comes back byte for byte`)
  }

  return got
}

describe('batch reads (POST /files/read)', () => {
  describe('on one cluster', () => {
    // Three keepers and three replicas: every keeper holds every file.
    const shared = clusterPerSuite({keepers: 3, replicas: 3})

    test('a get of many small files reads them in batches, fewer requests than files, and each comes back byte-exact', async () => {
      const cluster = shared.cluster
      // An empty file, small ones, one of exactly 1 MiB (the largest a batch serves), and one above
      // it, which takes a GET.
      const sizes = (index: number) => (index === 0 ? 0 : index === 1 ? 1024 * KiB : index === 2 ? 1024 * KiB + 1 : 1 + index * 997)
      const files = await store(cluster, shared.work, 'many', 40, sizes)
      const before = await keeperCounts(cluster)
      const got = await getAll(cluster, files, join(shared.work, 'many-out'))
      const after = await keeperCounts(cluster)
      assert.equal(after.served - before.served, 39, 'every file of up to 1 MiB came in a batch')
      assert.equal(after.refused - before.refused, 0)
      assert.ok(after.batches - before.batches >= 1 && after.batches - before.batches <= 6, `39 files in a few batch reads (${after.batches - before.batches})`)
      assert.equal(after.gets - before.gets, 1, 'one GET: the file above 1 MiB')
      // The report of each file names the one replica it came from, and the others as unused, as a
      // single get of a file of one range reports them.
      for (const file of got) assert.equal(file.sources.length, 3, `${file.name}: ${JSON.stringify(file.sources)}`)
      for (const file of got.filter((candidate) => candidate.name !== 'many-2.bin')) {
        assert.deepEqual(
          file.sources.filter((source) => source.ranges > 0).length,
          1,
          `${file.name} came from one replica`,
        )
      }
    })

    test('each item is authorised as a GET of it would be: refused ones get an error frame, the others in the same batch are served', async () => {
      const cluster = shared.cluster
      const files = await store(cluster, shared.work, 'auth', 3, (index) => 5000 + index)
      const [a, b, c] = await Promise.all([...files.keys()].map(async (name) => cluster.stat(name)))
      const keeper = cluster.keepers[0]!
      const other = cluster.keepers[1]!
      const grantAt = (file: typeof a, id: string) => file!.replicas.find((replica) => replica.keeper === id)!.grant!
      const key = await ClusterKey.load(cluster.secretFile)
      const expired = await mintGrant(key, {op: 'read', fileId: c!.fileId, name: c!.name, size: c!.size, sha256: c!.sha256, keeperId: keeper.id}, {ttlSeconds: 60, now: Date.now() - 3_600_000})
      const writeGrant = await cluster.grant('write', keeper.id, {name: b!.name, fileId: b!.fileId})
      const gone = await cluster.grant('read', keeper.id, {name: 'never-stored.bin', fileId: 'never-stored-id'})
      const items = [
        {name: a!.name, fileId: a!.fileId, grant: grantAt(a, keeper.id)},
        {name: b!.name, fileId: b!.fileId, grant: `${grantAt(b, keeper.id).slice(0, -3)}xyz`},
        {name: b!.name, fileId: b!.fileId, grant: grantAt(b, other.id)},
        {name: c!.name, fileId: c!.fileId, grant: expired},
        {name: c!.name, fileId: c!.fileId},
        {name: c!.name, fileId: c!.fileId, grant: grantAt(a, keeper.id)},
        {name: b!.name, fileId: b!.fileId, grant: writeGrant},
        {name: 'never-stored.bin', fileId: 'never-stored-id', grant: gone},
        {name: c!.name, fileId: c!.fileId, grant: grantAt(c, keeper.id)},
      ]
      const answer = await readBatch(keeper.url, {files: items})
      assert.equal(answer.status, 200)
      assert.equal(answer.type, FRAMES_TYPE)
      const frames = framesOf(answer.body)
      assert.deepEqual(
        frames.map((frame) => frame.head.error ?? 'served'),
        ['served', 'DFS_ERR_UNAUTHENTICATED', 'DFS_ERR_FORBIDDEN', 'DFS_ERR_UNAUTHENTICATED', 'DFS_ERR_UNAUTHENTICATED', 'DFS_ERR_FORBIDDEN', 'DFS_ERR_FORBIDDEN', 'DFS_ERR_NOT_FOUND', 'served'],
      )
      assert.deepEqual(
        frames.map((frame) => frame.head.fileId),
        items.map((item) => item.fileId),
        'one frame per item, in order',
      )
      for (const [frame, file] of [
        [frames[0]!, a!],
        [frames[8]!, c!],
      ] as const) {
        assert.deepEqual(frame.head, {fileId: file.fileId, size: file.size, sha256: file.sha256})
        assert.equal(createHash('sha256').update(frame.bytes).digest('hex'), files.get(file.name))
      }

      for (const frame of frames.filter((candidate) => candidate.head.error)) {
        assert.equal(frame.bytes.length, 0)
        assert.equal(typeof frame.head.message, 'string')
        assert.ok(!frame.head.message!.includes(grantAt(b, keeper.id).slice(0, 40)), 'no grant in an error message')
      }
    })

    test('a get of many names looks them up in chunks that start small (32, 64, then more), so that the first files are read early; every file comes back byte-exact', async () => {
      const cluster = shared.cluster
      const files = await store(cluster, shared.work, 'chunked', 100, (index) => 100 + index)
      const lookups = async () => {
        const response = await fetch(`${cluster.masterUrl}/metrics`, {headers: bearer(cluster.token)})
        assert.equal(response.status, 200)
        return sumOf(parseMetrics(await response.text()), 'dfs_http_requests_total', {method: 'POST', route: '/lookup'})
      }

      const before = await lookups()
      const reads = await keeperCounts(cluster)
      const got = await getAll(cluster, files, join(shared.work, 'chunked-out'))
      assert.equal(got.length, 100)
      const after = await keeperCounts(cluster)
      assert.equal(after.served - reads.served, 100, 'every file came in a batch, the answer of its own chunk')
      assert.equal(after.gets - reads.gets, 0, 'no file was got by itself')
      // 100 names: 32 + 64 + 4 (one look-up of all 100 would have kept every download waiting for it).
      assert.equal((await lookups()) - before, 3, 'three look-ups of 32, 64 and 4 names')
    })

    test('--no-clobber: a batched file whose local path exists is left alone, with its own error; the others are written', async () => {
      const cluster = shared.cluster
      const files = await store(cluster, shared.work, 'nc', 4, (index) => 1500 + index)
      const out = join(shared.work, 'nc-out')
      await mkdir(out, {recursive: true})
      await writeFile(join(out, 'nc-1.bin'), 'local bytes')
      const get = await cluster.dfs(['get', ...files.keys(), '-o', out, '--no-clobber'])
      assert.equal(get.code, 10, get.stderr)
      assert.match(get.stderr, /nc-1\.bin exists; --no-clobber leaves it alone/)
      assert.equal(await readFile(join(out, 'nc-1.bin'), 'utf8'), 'local bytes')
      for (const name of ['nc-0.bin', 'nc-2.bin', 'nc-3.bin']) assert.equal(await sha256File(join(out, name)), files.get(name), name)
      assert.deepEqual((await readdir(out)).sort(), ['nc-0.bin', 'nc-1.bin', 'nc-2.bin', 'nc-3.bin'], 'no temp file is left')
    })

    test('a body that is not a batch read is refused whole with a 400 catalogue error', async () => {
      const cluster = shared.cluster
      const url = cluster.keepers[0]!.url
      const item = {name: 'x.bin', fileId: 'some-id'}
      const bodies: unknown[] = [
        'not json',
        {},
        {files: []},
        {files: 'x.bin'},
        {files: [{name: 'x.bin'}]},
        {files: [{...item, fileId: 'not an id!'}]},
        {files: [{...item, grant: ''}]},
        {files: Array.from({length: MAX_BATCH_READ + 1}, () => item)},
      ]
      for (const body of bodies) {
        const answer = await readBatch(url, body)
        assert.equal(answer.status, 400, `${JSON.stringify(body).slice(0, 60)}: ${answer.body.toString()}`)
        const error = JSON.parse(answer.body.toString()) as {error: string; message: string}
        assert.equal(error.error, 'DFS_ERR_BAD_REQUEST')
        assert.equal(typeof error.message, 'string')
      }

      // The most items a batch may name is not refused whole: each is answered by its frame.
      const most = await readBatch(url, {files: Array.from({length: MAX_BATCH_READ}, () => item)})
      assert.equal(most.status, 200)
      assert.equal(framesOf(most.body).length, MAX_BATCH_READ)
    })
  })

  test('without a cluster key, items need no grant (as a GET needs none), and a get of many files reads them in batches', async (t: TestContext) => {
    const dir = await tempDir('dfs-batch-nokey-')
    const servers: ServerProcess[] = []
    t.after(async () => {
      await Promise.all(servers.map(async (server) => server.stop('SIGKILL')))
      await rm(dir, {recursive: true, force: true})
    })
    const master = await ServerProcess.start(['master', '--port', '0', '--data', join(dir, 'master'), '--replicas', '2', '--heartbeat-timeout', FAST.heartbeatTimeout, '--replication-interval', FAST.replicationInterval])
    servers.push(master)
    for (const index of [1, 2]) servers.push(await ServerProcess.start(['keeper', '--master', master.url, '--data', join(dir, `keeper-${index}`), '--heartbeat-interval', FAST.heartbeatInterval]))
    const keepers = servers.slice(1)
    await waitFor('two alive keepers', async () => {
      const status = (await (await fetch(`${master.url}/keepers`)).json()) as {keepers: Array<{alive: boolean}>}
      return status.keepers.filter((keeper) => keeper.alive).length === 2
    })
    const files = new Map<string, string>()
    for (let index = 0; index < 12; index++) files.set(`open-${index}.bin`, await randomFile(join(dir, `open-${index}.bin`), 3000 + index))
    const put = await dfs(['put', ...[...files.keys()].map((name) => join(dir, name)), '--master', master.url, '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)

    const first = (await (await fetch(`${master.url}/files/open-0.bin`)).json()) as {fileId: string; size: number; sha256: string}
    const answer = await readBatch(keepers[0]!.url, {files: [{name: 'open-0.bin', fileId: first.fileId}, {name: 'open-0.bin', fileId: 'another-generation'}]})
    assert.equal(answer.status, 200)
    const frames = framesOf(answer.body)
    assert.deepEqual(frames[0]!.head, {fileId: first.fileId, size: first.size, sha256: first.sha256})
    assert.equal(createHash('sha256').update(frames[0]!.bytes).digest('hex'), files.get('open-0.bin'))
    assert.equal(frames[1]!.head.error, 'DFS_ERR_NOT_FOUND', 'a generation the keeper does not hold is not served')

    const served = async () => {
      let sum = 0
      for (const keeper of keepers) sum += sumOf(parseMetrics(await (await fetch(`${keeper.url}/metrics`)).text()), 'dfs_keeper_batch_read_files_total', {result: 'served'})
      return sum
    }

    const before = await served()
    const out = join(dir, 'out')
    const got = await dfsJson<GotFile[]>(['get', ...files.keys(), '-o', out, '--master', master.url])
    assert.equal(got.length, files.size)
    for (const [name, sha256] of files) assert.equal(await sha256File(join(out, name)), sha256, name)
    assert.equal((await served()) - before, files.size, 'every file came in a batch')
  })

  describe('when a replica fails its batch', () => {
    const clusters = clusterPerTest()

    test('a keeper that serves corrupt copies: those files come byte-exact from other replicas, the rest from batches', async () => {
      const cluster = await clusters.start({keepers: 4})
      const files = await store(cluster, clusters.work, 'rot', 30, (index) => 3000 + index * 101)
      const bad = cluster.keepers[0]!
      // Every copy on the bad keeper is damaged, so that whichever files a batch reads from it are.
      let damaged = 0
      for (const name of files.keys()) {
        const {fileId, replicas} = await cluster.stat(name)
        if (!replicas.some((replica) => replica.keeper === bad.id)) continue
        await flipEvery(cluster.blobPath(bad.id, fileId), 1000)
        damaged++
      }

      assert.ok(damaged > 0)
      const before = await keeperCounts(cluster)
      const got = await getAll(cluster, files, join(clusters.work, 'rot-out'))
      const reported = got.filter((file) => file.corruptReplicas.length > 0)
      // The master copies each dropped replica back from a good one, in batch reads too: counted
      // apart (the keepers' batch copies), once every such copy is made.
      for (const file of reported) await cluster.waitForReplicas(file.name, 3)
      const after = await keeperCounts(cluster)
      assert.ok(reported.length > 0, 'the bad keeper served some files in a batch, and they were found corrupt')
      for (const file of reported) {
        assert.deepEqual(file.corruptReplicas, [bad.id])
        assert.ok(!file.sources.some((source) => source.keeper === bad.id && source.ranges > 0), `${file.name}'s good bytes came from another replica`)
      }

      assert.equal(after.served - before.served - (after.copies - before.copies), 30, 'every file was served by a batch once to the get (the bad keeper\'s too)')
      const good = await keeperCounts(cluster, (id) => id !== bad.id)
      assert.ok(good.served >= 30 - reported.length, 'the files the bad keeper did not serve came in batches from the others')
      assert.ok(bad.logs.some((line) => line.includes('is corrupt')), 'the bad keeper verified a copy on the master\'s order and dropped it')
    })

    test('a batch read cut off mid-answer: the files it had not delivered come from single gets, byte-exact', async (t) => {
      const cluster = await clusters.start({keepers: 3})
      const {keeper, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
      const files = await store(cluster, clusters.work, 'cut', 40, (index) => 4000 + index * 53)
      // The middle of some frame, well before the end of any batch of ~10 files.
      proxy.cutBatchReads = 9000
      const got = await getAll(cluster, files, join(clusters.work, 'cut-out'))
      assert.ok(proxy.batchReadsCut > 0, 'a batch read from the keeper behind the proxy was cut off')
      assert.ok(got.some((file) => file.sources.some((source) => source.keeper === keeper.id && source.ranges > 0)), 'the keeper behind the proxy delivered files before the cut')
    })

    test('a keeper that lost its copies: each file it was asked for gets an error frame and comes from another replica', async () => {
      const cluster = await clusters.start({keepers: 4})
      const files = await store(cluster, clusters.work, 'lost', 30, (index) => 2000 + index * 37)
      const bad = cluster.keepers[0]!
      for (const name of files.keys()) {
        const {fileId, replicas} = await cluster.stat(name)
        if (replicas.some((replica) => replica.keeper === bad.id)) await rm(cluster.blobPath(bad.id, fileId))
      }

      const before = await keeperCounts(cluster, (id) => id === bad.id)
      const got = await getAll(cluster, files, join(clusters.work, 'lost-out'))
      const after = await keeperCounts(cluster, (id) => id === bad.id)
      assert.ok(after.refused - before.refused > 0, 'the keeper without the copies refused some items')
      assert.equal(after.served - before.served, 0)
      for (const file of got) assert.ok(!file.sources.some((source) => source.keeper === bad.id && source.ranges > 0), `${file.name} did not come from the keeper that lost it`)
      // The files are whole where they were written.
      for (const [name, sha256] of files) assert.equal(createHash('sha256').update(await readFile(join(clusters.work, 'lost-out', name))).digest('hex'), sha256)
    })
  })
})
