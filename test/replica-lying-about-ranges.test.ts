import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {ERRORS} from '../src/lib/errors.js'
import {clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {startProxiedKeeper, type RangeLie} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024
const RANGE = 64 * 1024

interface GetReport {
  sha256: string
  sources: Array<{keeper: string; bytes: number; ranges: number; failed?: string}>
  corruptReplicas: string[]
}

describe('a replica that answers ranges with the wrong bytes', () => {
  const clusters = clusterPerTest()

  test('is caught, and get still finishes byte-exact from the other replicas', async (t) => {
    const cluster = await clusters.start({keepers: 2})
    const {keeper: liar, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    await waitFor('three alive keepers', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 3)
    const source = join(clusters.work, 'ranged.bin')
    const sha256 = await randomFile(source, 2 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    assert.ok((await cluster.stat('ranged.bin')).replicas.some((replica) => replica.keeper === liar.id))

    // What the client must see in the liar's report for each lie it can pin on one range.
    const caught: Record<Exclude<RangeLie, 'none' | 'relabelled'>, RegExp> = {
      short: new RegExp(`sent ${RANGE - 1} of ${RANGE} bytes`),
      long: /sent too many bytes/,
      shifted: /answered bytes \d+-\d+ with range bytes \d+-\d+\//,
    }
    // One cluster for every lie (subtests would each get the suite's fresh-cluster hooks).
    for (const lie of ['short', 'long', 'shifted', 'relabelled'] as const) {
      proxy.rangeLie = lie
      proxy.lies = 0
      const out = join(clusters.work, `ranged.${lie}`)
      const [report] = await cluster.dfsJson<[GetReport]>(['get', 'ranged.bin', '-o', out, '--range-size', String(RANGE)])
      assert.ok(proxy.lies > 0, `${lie}: the liar was asked for ranges and lied`)
      assert.equal(await sha256File(out), sha256, lie)
      assert.equal(report.sha256, sha256, lie)
      assert.deepEqual(report.corruptReplicas, [], `${lie}: the liar's copy on disk is good, it must not be dropped`)
      if (lie === 'relabelled') {
        // Right length, right labels, wrong bytes: only the whole file's sha256 shows it, and only
        // reading one replica at a time shows whose bytes were wrong.
        assert.equal(report.sources.length, 1, `${lie}: ${JSON.stringify(report.sources)}`)
        assert.notEqual(report.sources[0]!.keeper, liar.id, lie)
      } else {
        const liarReport = report.sources.find((reported) => reported.keeper === liar.id)
        assert.match(liarReport?.failed ?? '', caught[lie], `${lie}: ${JSON.stringify(report.sources)}`)
      }
    }

    proxy.rangeLie = 'none'
    const info = await cluster.stat('ranged.bin')
    assert.equal(info.replicas.filter((replica) => replica.alive).length, 3)
    assert.ok(info.replicas.some((replica) => replica.keeper === liar.id && replica.alive))
    assert.ok(!liar.logs.some((line) => line.includes('is corrupt')))
  })

  test('a file of one range that a replica answers short comes byte-exact from the other, at the first try', async (t) => {
    const cluster = await clusters.start({keepers: 1, replicas: 2})
    const {keeper: liar, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    await waitFor('two alive keepers', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 2)
    // Files of one range each (the default range is 4 MiB), each read from a replica picked at
    // random: with 16 of them the liar is asked first for some (all but surely: 1 - 2^-16). Just
    // over 1 MiB, so that a get of many names reads them with GETs, not in a batch read (POST
    // /files/read, which serves files of up to 1 MiB).
    const names = Array.from({length: 16}, (_, index) => `one-range-${index}.bin`)
    const sha256s = new Map<string, string>()
    for (const name of names) sha256s.set(name, await randomFile(join(clusters.work, name), MiB + 1))
    assert.equal((await cluster.dfs(['put', ...names.map((name) => join(clusters.work, name)), '--wait', 'all'])).code, 0)

    proxy.rangeLie = 'short'
    const outDir = join(clusters.work, 'out')
    const reports = await cluster.dfsJson<Array<GetReport & {name: string}>>(['get', ...names, '-o', outDir])
    assert.ok(proxy.lies > 0, 'the liar was asked first for some file')
    assert.equal(reports.length, names.length)
    for (const report of reports) {
      assert.equal(await sha256File(join(outDir, report.name)), sha256s.get(report.name), report.name)
      assert.equal(report.sha256, sha256s.get(report.name), report.name)
      assert.deepEqual(report.corruptReplicas, [], report.name)
      // The short answer was caught by its length and the range read again from the other replica,
      // in the same try (a try that ended in a sha256 mismatch would read from one replica only).
      assert.equal(report.sources.length, 2, `${report.name}: ${JSON.stringify(report.sources)}`)
      const liarReport = report.sources.find((reported) => reported.keeper === liar.id)!
      if (liarReport.failed !== undefined) assert.match(liarReport.failed, /sent 1048576 of 1048577 bytes/, report.name)
    }

    assert.deepEqual((await readdir(outDir)).sort(), [...names].sort(), 'no temp file is left')
  })

  test('when every replica lies, get fails with DFS_ERR_INTEGRITY and writes nothing', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    const source = join(clusters.work, 'only.bin')
    await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source])).code, 0)

    for (const lie of ['relabelled', 'short'] as const) {
      proxy.rangeLie = lie
      proxy.lies = 0
      const outDir = join(clusters.work, `out-${lie}`)
      const get = await cluster.dfs(['get', 'only.bin', '-o', `${outDir}/`, '--range-size', String(RANGE)])
      assert.ok(proxy.lies > 0)
      assert.equal(get.code, ERRORS.DFS_ERR_INTEGRITY.exit, `${lie}: ${get.stderr}`)
      assert.equal(get.stderr.trim().split('\n').length, 1, get.stderr)
      assert.deepEqual(await readdir(outDir), [], 'neither the file nor a temp file is left')
    }
  })
})
