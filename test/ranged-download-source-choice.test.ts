import assert from 'node:assert/strict'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import {showingGrant} from '../src/lib/grants.js'
import {Peer} from '../src/lib/peer-client.js'
import {BusyMeter, MAX_PROBE_BACKOFF, RangedDownload, SourceChooser, machineBusy, type SourceChoice, type Stretch} from '../src/roles/client/ranged-download.js'
import {clusterPerTest, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024
const RANGE = 64 * 1024

describe('SourceChooser', () => {
  const source = (bytes: number, ms: number, standby = false, failed?: string): SourceChoice => ({bytes, ms, standby, failed})
  const standbys = (sources: SourceChoice[]) => sources.map((each) => each.standby)

  test('a client busy to the limit goes on with the fastest replica alone', () => {
    const sources = [source(4 * MiB, 100), source(8 * MiB, 100), source(2 * MiB, 100)]
    new SourceChooser().choose({busy: 0.95, rate: 100}, sources)
    assert.deepEqual(standbys(sources), [true, false, true])
  })

  test('a client that waits tries one standby replica, the quickest so far, never a failed one', () => {
    const sources = [source(4 * MiB, 100), source(MiB, 10, true, 'refused'), source(MiB, 50, true), source(MiB, 80, true)]
    new SourceChooser().choose({busy: 0.2, rate: 100}, sources)
    assert.deepEqual(standbys(sources), [false, true, false, true])
  })

  test('between the two, the choice stands', () => {
    const sources = [source(4 * MiB, 100), source(MiB, 50, true)]
    new SourceChooser().choose({busy: 0.7, rate: 100}, sources)
    assert.deepEqual(standbys(sources), [false, true])
  })

  test('a replica tried is kept when the file then came faster', () => {
    const chooser = new SourceChooser()
    const sources = [source(4 * MiB, 100), source(MiB, 50, true), source(MiB, 60, true)]
    chooser.choose({busy: 0.2, rate: 100}, sources)
    assert.deepEqual(standbys(sources), [false, false, true])
    // Still waiting, and 50 % faster: kept, and the next one is tried at once.
    chooser.choose({busy: 0.2, rate: 150}, sources)
    assert.deepEqual(standbys(sources), [false, false, false])
  })

  test('a replica tried goes back to standby when the file came no faster, and the next try waits twice as long each time', () => {
    const chooser = new SourceChooser()
    const sources = [source(4 * MiB, 100), source(MiB, 50, true)]
    const waiting: Stretch = {busy: 0.2, rate: 100}
    const skipped: number[] = []
    chooser.choose(waiting, sources)
    for (let attempt = 0; attempt < 6; attempt++) {
      assert.deepEqual(standbys(sources), [false, false], `attempt ${attempt}: the standby one is tried`)
      // The stretch with both came at 105 % of the one before: not worth a replica.
      chooser.choose({busy: 0.2, rate: 105}, sources)
      assert.deepEqual(standbys(sources), [false, true], `attempt ${attempt}: not kept`)
      let skips = 0
      for (;;) {
        chooser.choose(waiting, sources)
        if (!sources[1]!.standby) break
        skips++
      }

      skipped.push(skips)
    }

    assert.deepEqual(skipped, [2, 4, 8, 16, MAX_PROBE_BACKOFF, MAX_PROBE_BACKOFF])
  })

  test('a replica tried stays when it is the only one left in use', () => {
    const chooser = new SourceChooser()
    const sources = [source(4 * MiB, 100), source(MiB, 50, true)]
    chooser.choose({busy: 0.2, rate: 100}, sources)
    sources[0]!.failed = 'refused'
    chooser.choose({busy: 0.2, rate: 10}, sources)
    assert.equal(sources[1]!.standby, false)
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
  const keepFirst = (_stretch: Stretch, sources: SourceChoice[]) => sources.forEach((each, index) => (each.standby = index > 0))

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
