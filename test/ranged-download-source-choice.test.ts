import assert from 'node:assert/strict'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import {showingGrant} from '../src/lib/grants.js'
import {Peer} from '../src/lib/peer-client.js'
import {BusyMeter, RangedDownload, chooseSources, machineBusy, type SourceChoice} from '../src/roles/client/ranged-download.js'
import {clusterPerTest, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024
const RANGE = 64 * 1024

describe('chooseSources', () => {
  const source = (bytes: number, ms: number, standby = false, failed?: string): SourceChoice => ({bytes, ms, standby, failed})

  test('a client busy to the limit goes on with the fastest replica alone', () => {
    const sources = [source(4 * MiB, 100), source(8 * MiB, 100), source(2 * MiB, 100)]
    chooseSources(0.95, sources)
    assert.deepEqual(sources.map((each) => each.standby), [true, false, true])
  })

  test('a client that waits takes one standby replica back, never a failed one', () => {
    const sources = [source(4 * MiB, 100), source(MiB, 10, true, 'refused'), source(MiB, 50, true)]
    chooseSources(0.2, sources)
    assert.deepEqual(sources.map((each) => each.standby), [false, true, false])
  })

  test('between the two, the choice stands', () => {
    const sources = [source(4 * MiB, 100), source(MiB, 50, true)]
    chooseSources(0.7, sources)
    assert.deepEqual(sources.map((each) => each.standby), [false, true])
  })
})

describe('how busy the client was (BusyMeter)', () => {
  test("the machine's CPUs count: 2 of 8 CPU-ms idle is 0.75 busy; no time passed reads as waiting", () => {
    assert.equal(machineBusy({idle: 100, total: 400}, {idle: 102, total: 408}), 0.75)
    assert.equal(machineBusy({idle: 100, total: 400}, {idle: 100, total: 400}), 0)
  })

  test('a thread that spins reads as busy to the limit', () => {
    const meter = new BusyMeter()
    const until = performance.now() + 150
    while (performance.now() < until) {
      // spinning: the event loop is busy the whole time
    }

    assert.ok(meter.read() >= 0.85, 'a spinning thread is what limits the download')
  })
})

describe('a download that keeps one replica of two', () => {
  const clusters = clusterPerTest()

  // The first source (behind the proxy) is kept alone at the first choice, as for a busy client.
  const keepFirst = (_busy: number, sources: SourceChoice[]) => sources.forEach((each, index) => (each.standby = index > 0))

  async function twoReplicas(t: TestContext) {
    const cluster: TestCluster = await clusters.start({keepers: 1, replicas: 2})
    const {keeper: proxied, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    await waitFor('two alive keepers', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 2)
    const path = join(clusters.work, 'choice.bin')
    const sha256 = await randomFile(path, 2 * MiB)
    assert.equal((await cluster.dfs(['put', path, '--wait', 'all'])).code, 0)
    const info = await cluster.stat('choice.bin')
    assert.equal(info.replicas.length, 2)
    // The proxied keeper first, so that the choice keeps it.
    const replicas = [...info.replicas].sort((a, b) => (a.keeper === proxied.id ? -1 : b.keeper === proxied.id ? 1 : 0))
    const sources = replicas.map((replica) => ({keeper: replica.keeper, peer: new Peer({role: 'keeper', baseUrl: replica.url, credentials: showingGrant(replica.grant)})}))
    return {proxied, proxy, info, sha256, sources}
  }

  async function download(options: ConstructorParameters<typeof RangedDownload>[0], out: string, onWritten?: (bytes: number) => void) {
    const handle = await open(out, 'wx')
    try {
      const ranged = new RangedDownload(options)
      let written = 0
      await ranged.run(async (chunks, position) => {
        for (const chunk of chunks) {
          await handle.write(chunk, 0, chunk.length, position)
          position += chunk.length
          written += chunk.length
        }

        onWritten?.(written)
      })
      return ranged.report
    } finally {
      await handle.close()
    }
  }

  test('reads the rest from the kept one only', async (t) => {
    const {proxied, info, sha256, sources} = await twoReplicas(t)
    const out = join(clusters.work, 'kept.bin')
    const report = await download({name: info.name, fileId: info.fileId, size: info.size, sources, rangeSize: RANGE, choose: keepFirst}, out)
    assert.equal(await sha256File(out), sha256)
    const kept = report.find((each) => each.keeper === proxied.id)!
    const other = report.find((each) => each.keeper !== proxied.id)!
    // Before the first choice (4 ranges finished) the other had at most those and 2 under way.
    assert.ok(other.ranges <= 6, JSON.stringify(report))
    assert.equal(kept.ranges + other.ranges, 2 * MiB / RANGE, JSON.stringify(report))
  })

  test('when the kept one fails, a standby one takes over and the file is whole', async (t) => {
    const {proxied, proxy, info, sha256, sources} = await twoReplicas(t)
    const out = join(clusters.work, 'taken-over.bin')
    // Half-way, long after the choice, the kept replica starts sending short ranges.
    const report = await download({name: info.name, fileId: info.fileId, size: info.size, sources, rangeSize: RANGE, choose: keepFirst}, out, (bytes) => {
      if (bytes >= MiB) proxy.rangeLie = 'short'
    })
    assert.ok(proxy.lies > 0)
    assert.equal(await sha256File(out), sha256)
    const kept = report.find((each) => each.keeper === proxied.id)!
    const other = report.find((each) => each.keeper !== proxied.id)!
    assert.match(kept.failed ?? '', /sent \d+ of \d+ bytes/, JSON.stringify(report))
    assert.ok(other.bytes >= MiB - RANGE, JSON.stringify(report))
  })
})
