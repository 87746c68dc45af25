import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {mintClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {createRegistry} from '../src/lib/metrics.js'
import {Master} from '../src/roles/master/master.js'
import {MasterMetrics, type Census} from '../src/roles/master/metrics.js'
import {flipBytes} from './chaos/disk-faults.js'
import {ServerProcess, bearer, clusterPerTest, tempDir, waitFor, type TestCluster} from './helpers/cluster.js'
import {parseMetrics, sumOf, type Sample} from './helpers/prometheus-text.js'
import {whileImmutable} from './helpers/skip.js'
import {assertReadBack, storeRandomFiles} from './helpers/stored-files.js'

/** GET /metrics of one server (master or keeper), with a token when given; fails unless it is Prometheus text. */
async function scrape(url: string, token?: string): Promise<Sample[]> {
  const response = await fetch(`${url}/metrics`, {headers: token ? bearer(token) : {}, signal: AbortSignal.timeout(60_000)})
  const text = await response.text()
  assert.equal(response.status, 200, text)
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return parseMetrics(text)
}

/** The sum of one metric over every keeper of the cluster. */
async function overKeepers(cluster: TestCluster, name: string, labels: Record<string, string> = {}): Promise<number> {
  const scrapes = await Promise.all(cluster.keepers.filter((keeper) => !keeper.exited).map((keeper) => scrape(keeper.url, cluster.token)))
  return scrapes.reduce((sum, samples) => sum + sumOf(samples, name, labels), 0)
}

/** The status and body of GET `path` on a server, with no credential (as an orchestrator's probe). */
async function probe(url: string, path: string): Promise<{status: number; body: {status?: string; error?: string; message?: string}}> {
  const response = await fetch(`${url}${path}`, {signal: AbortSignal.timeout(60_000)})
  return {status: response.status, body: (await response.json()) as {status?: string; error?: string; message?: string}}
}

test('a stall of the event loop shows in nodejs_eventloop_lag_max_seconds, sampled as the registry says', async () => {
  const registry = createRegistry()
  // The monitor measures from its first sample on: let it take some before the stall.
  await sleep(250)
  // Busy for 300 ms: the sample due meanwhile comes at least 300 ms after the one before it, however loaded the machine.
  const until = Date.now() + 300
  while (Date.now() < until);
  await sleep(250)
  const max = sumOf(parseMetrics(await registry.metrics()), 'nodejs_eventloop_lag_max_seconds')
  assert.ok(max >= 0.25, `lag max ${max} s after a 300 ms stall`)
})

test("the master's census is taken once per scrape, and afresh at the next however soon it comes", async () => {
  let taken = 0
  const census = (): Census => {
    taken++
    return {files: taken, bytes: 0, underReplicated: 0, missing: 0, copiesNeeded: 0, copiesInFlight: 0, keepersAlive: 0, keepersDead: 0}
  }

  const registry = createRegistry()
  new MasterMetrics(registry, census)
  const first = parseMetrics(await registry.metrics())
  assert.equal(taken, 1, 'every gauge of one scrape from one census')
  assert.equal(sumOf(first, 'dfs_master_files'), 1)
  // The next scrape, as the next request is, in a later turn of the event loop: at once, not seconds later.
  await new Promise(setImmediate)
  const second = parseMetrics(await registry.metrics())
  assert.equal(taken, 2)
  assert.equal(sumOf(second, 'dfs_master_files'), 2, 'a scrape right after another shows the table as it is now')
})

describe('metrics, health and readiness of every role', () => {
  const clusters = clusterPerTest()

  test('counters and gauges on the master and the keepers move as files are put, got, found corrupt and repaired', async () => {
    // Three keepers for three replicas: a dead one leaves its files short until a fourth comes.
    const cluster = await clusters.start({keepers: 3, replicas: 3, keeperArgs: ['--scrub-interval', '300ms']})
    const token = cluster.token
    const before = await scrape(cluster.masterUrl, token)
    const keepersBefore = {
      uploads: await overKeepers(cluster, 'dfs_keeper_upload_duration_seconds_count', {result: 'ok'}),
      copies: await overKeepers(cluster, 'dfs_keeper_copy_duration_seconds_count', {result: 'ok'}),
    }

    const files = await storeRandomFiles(cluster, clusters.work, 'scraped', 2, {baseSize: 300 * 1024, step: 1000, replicas: 3})
    const bytes = 2 * 300 * 1024 + 1000
    const master = await scrape(cluster.masterUrl, token)
    const moved = (name: string, labels: Record<string, string> = {}) => sumOf(master, name, labels) - sumOf(before, name, labels)
    assert.equal(sumOf(master, 'dfs_master_files'), 2)
    assert.equal(sumOf(master, 'dfs_master_stored_bytes'), bytes)
    assert.equal(moved('dfs_master_uploads_committed_total'), 2)
    assert.equal(moved('dfs_http_requests_total', {method: 'POST', route: '/uploads/batch', status: '201'}), 2)
    assert.equal(moved('dfs_http_requests_total', {method: 'POST', route: '/uploads/commits', status: '200'}), 2)
    // Two copies of each file, whatever failed and was ordered again on the way.
    assert.equal(moved('dfs_master_replication_copies_ordered_total') - moved('dfs_master_replication_copies_failed_total'), 4)
    assert.equal(sumOf(master, 'dfs_master_keepers_alive'), 3)
    assert.equal(sumOf(master, 'dfs_master_keepers_dead'), 0)
    assert.equal(sumOf(master, 'dfs_master_files_under_replicated'), 0)
    assert.equal(sumOf(master, 'dfs_master_files_missing'), 0)
    assert.equal(sumOf(master, 'dfs_master_replication_queue'), 0)
    // Route patterns, never a file's name.
    assert.ok(!master.some((sample) => Object.values(sample.labels).some((value) => value.includes('scraped'))), 'no label carries a file name')

    assert.equal(await overKeepers(cluster, 'dfs_keeper_files'), 6)
    assert.equal(await overKeepers(cluster, 'dfs_keeper_stored_bytes'), 3 * bytes)
    assert.equal((await overKeepers(cluster, 'dfs_keeper_upload_duration_seconds_count', {result: 'ok'})) - keepersBefore.uploads, 2)
    assert.equal((await overKeepers(cluster, 'dfs_keeper_copy_duration_seconds_count', {result: 'ok'})) - keepersBefore.copies, 4)
    assert.equal(await overKeepers(cluster, 'dfs_http_requests_total', {method: 'PUT', route: '/files/:name', status: '201'}), 2)
    for (const keeper of cluster.keepers) {
      const samples = await scrape(keeper.url, token)
      assert.ok(sumOf(samples, 'dfs_keeper_fsync_duration_seconds_count') > 0, `keeper ${keeper.id} timed its fsyncs`)
      assert.ok(sumOf(samples, 'dfs_keeper_disk_size_bytes') >= sumOf(samples, 'dfs_keeper_free_bytes'))
      assert.ok(sumOf(samples, 'dfs_keeper_free_bytes') > 0)
    }

    // Reads: every keeper's downloads and bytes sent grow by at least the files read.
    const downloads = await overKeepers(cluster, 'dfs_keeper_download_duration_seconds_count', {result: 'ok'})
    const sent = await overKeepers(cluster, 'dfs_http_sent_bytes_total', {route: '/files/:name'})
    await assertReadBack(cluster, clusters.work, files)
    assert.ok((await overKeepers(cluster, 'dfs_keeper_download_duration_seconds_count', {result: 'ok'})) - downloads >= 2)
    assert.ok((await overKeepers(cluster, 'dfs_http_sent_bytes_total', {route: '/files/:name'})) - sent >= bytes)

    // Bit rot on one replica: that keeper's scrubber finds it, the master hears of it and copies it back.
    const {fileId, size} = await cluster.stat('scraped-0.bin')
    const rotten = cluster.keepers[1]!
    await waitFor('a first scrub pass', async () => sumOf(await scrape(rotten.url, token), 'dfs_keeper_scrub_passes_total') >= 1)
    assert.ok(sumOf(await scrape(rotten.url, token), 'dfs_keeper_scrubbed_files_total') >= 2)
    await flipBytes(cluster.blobPath(rotten.id, fileId), size, [0.5])
    await waitFor('the corrupt replica found and reported', async () => {
      const [keeper, master] = await Promise.all([scrape(rotten.url, token), scrape(cluster.masterUrl, token)])
      return sumOf(keeper, 'dfs_keeper_corrupt_replicas_total') === 1 && sumOf(master, 'dfs_master_corrupt_replicas_reported_total') === 1
    })
    await cluster.waitForReplicas('scraped-0.bin', 3)

    // A keeper dies: both files are short and nowhere to copy them, until a new keeper comes.
    const copied = (samples: Sample[]) => sumOf(samples, 'dfs_master_replication_copies_ordered_total') - sumOf(samples, 'dfs_master_replication_copies_failed_total')
    const copiedBefore = copied(await scrape(cluster.masterUrl, token))
    await cluster.keepers[0]!.stop('SIGKILL')
    await waitFor('the dead keeper and its files short', async () => {
      const samples = await scrape(cluster.masterUrl, token)
      return sumOf(samples, 'dfs_master_keepers_dead') === 1 && sumOf(samples, 'dfs_master_files_under_replicated') === 2 && sumOf(samples, 'dfs_master_replication_queue') === 2
    })
    assert.equal(sumOf(await scrape(cluster.masterUrl, token), 'dfs_master_keepers_alive'), 2)
    const newcomer = await cluster.addKeeper()
    const repaired = await waitFor('both files repaired onto the new keeper', async () => {
      const samples = await scrape(cluster.masterUrl, token)
      const settled = sumOf(samples, 'dfs_master_files_under_replicated') === 0 && sumOf(samples, 'dfs_master_replication_queue') === 0 && sumOf(samples, 'dfs_master_replication_copies_in_flight') === 0
      return settled && samples
    })
    assert.equal(copied(repaired) - copiedBefore, 2)
    const fresh = await scrape(newcomer.url, token)
    assert.equal(sumOf(fresh, 'dfs_keeper_files'), 2)
    assert.equal(sumOf(fresh, 'dfs_keeper_copy_duration_seconds_count', {result: 'ok'}), 2)
  })

  test('with a cluster key /metrics takes a read token unless --metrics-public, /health and /ready take none, and nothing names a file', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1, keeperArgs: ['--metrics-public']})
    const key = await ClusterKey.load(cluster.secretFile)
    const reader = (await mintClientToken(key, {scope: 'read', ttlMs: 3_600_000})).token
    const [open] = cluster.keepers as [ServerProcess]
    // A keeper of the same cluster without the flag, beside it.
    const closed = await ServerProcess.start(['keeper', '--master', cluster.masterUrl, '--data', join(await tempDir(), 'closed'), '--secret-file', cluster.secretFile, '--heartbeat-interval', '150ms'])
    try {
      for (const url of [cluster.masterUrl, closed.url]) {
        const refused = await probe(url, '/metrics')
        assert.equal(refused.status, 401)
        assert.equal(refused.body.error, 'DFS_ERR_UNAUTHENTICATED')
        const forged = await fetch(`${url}/metrics`, {headers: bearer(`${reader.slice(0, -2)}xx`)})
        assert.equal(forged.status, 401)
        await scrape(url, reader)
      }

      await scrape(open.url)
      for (const url of [cluster.masterUrl, open.url, closed.url]) {
        assert.deepEqual((await probe(url, '/health')).body.status, 'ok')
        assert.deepEqual(await probe(url, '/ready'), {status: 200, body: {status: 'ready'}})
      }

      await storeRandomFiles(cluster, clusters.work, 'named-secretly', 1, {baseSize: 1000, step: 0, replicas: 1})
      for (const text of await Promise.all([cluster.masterUrl, open.url, closed.url].map((url) => fetch(`${url}/metrics`, {headers: bearer(reader)}).then((response) => response.text())))) {
        assert.ok(!text.includes('named-secretly'), 'no file name in the metrics')
        assert.ok(!text.includes(reader) && !text.includes(cluster.token), 'no token in the metrics')
      }

      // The only keeper holding the file dies: it is missing, not under-replicated.
      const holder = (await cluster.stat('named-secretly-0.bin')).replicas[0]!.keeper
      await (holder === open.id ? open : closed).stop('SIGKILL')
      await waitFor('the file counted missing', async () => {
        const samples = await scrape(cluster.masterUrl, reader)
        return sumOf(samples, 'dfs_master_files_missing') === 1 && sumOf(samples, 'dfs_master_keepers_dead') === 1
      })
      assert.equal(sumOf(await scrape(cluster.masterUrl, reader), 'dfs_master_files_under_replicated'), 0)
    } finally {
      await closed.stop('SIGKILL')
    }
  })

  test('a keeper is not ready while its master is down or its data dir cannot be written, and ready again after', async (t) => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const [keeper] = cluster.keepers as [ServerProcess]
    assert.deepEqual(await probe(keeper.url, '/ready'), {status: 200, body: {status: 'ready'}})

    await cluster.master.stop('SIGKILL')
    const down = await waitFor('the keeper not ready without its master', async () => {
      const answer = await probe(keeper.url, '/ready')
      return answer.status !== 200 && answer
    })
    assert.equal(down.status, 503)
    assert.equal(down.body.error, 'DFS_ERR_NOT_READY')
    assert.match(down.body.message!, /not in touch with the master/)
    // Alive all the same: an orchestrator must not restart a keeper for its master's sake.
    assert.equal((await probe(keeper.url, '/health')).status, 200)
    await cluster.startMaster()
    await waitFor('the keeper ready again with its master back', async () => (await probe(keeper.url, '/ready')).status === 200)

    const tmp = join(cluster.dataDirOf(keeper), 'tmp')
    const ran = await whileImmutable(t, tmp, async () => {
      const full = await probe(keeper.url, '/ready')
      assert.equal(full.status, 503)
      assert.equal(full.body.error, 'DFS_ERR_NOT_READY')
      assert.match(full.body.message!, /cannot write to its data dir/)
    })
    if (!ran) return

    assert.equal((await probe(keeper.url, '/ready')).status, 200)
  })

  test('the master is ready while its table answers, and not once it cannot read it', async () => {
    const dir = await tempDir()
    const master = new Master({dataDir: dir, replicas: 1, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
    master.assertReady()
    master.table.close()
    assert.throws(() => master.assertReady(), {code: 'DFS_ERR_NOT_READY', message: /cannot read its table/})
    await master.stop().catch(() => {})
  })
})
