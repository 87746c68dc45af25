// `dfs put` reports a file stored only on the master's word: a keeper that answers "stored" for an
// upload it never made (a lying or broken keeper, here a proxy in front of a real one) does not
// make put print success, and nothing is listed.

import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {clusterPerTest, randomFile, sha256File} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

describe('put believes the master, not the keeper', () => {
  const clusters = clusterPerTest()

  test('a keeper that claims an upload it never stored: put fails with one line, and nothing is recorded', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    const source = join(clusters.work, 'claimed.bin')
    await randomFile(source, 200 * 1024)

    proxy.fakeStores = true
    const lied = await cluster.dfs(['put', source])
    assert.equal(lied.code, 7, lied.stderr)
    assert.equal(lied.stdout, '')
    assert.match(lied.stderr, /^Error: keeper \S+ answered that "claimed\.bin" was stored, but the master has no record of this upload\n$/)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])

    // The same keeper, honest again: the same put succeeds.
    proxy.fakeStores = false
    const honest = await cluster.dfs(['put', source])
    assert.equal(honest.code, 0, honest.stderr)
    const out = join(clusters.work, 'claimed.copy')
    assert.equal((await cluster.dfs(['get', 'claimed.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), await sha256File(source))
  })

  test('a keeper that claims it sealed a one-pass upload it never stored: put fails with one line, and nothing is recorded', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    const source = join(clusters.work, 'large-claimed.bin')
    // Over put's in-memory size (8 MiB): hashed while sent, then sealed.
    await randomFile(source, 9 * 1024 * 1024)

    proxy.fakeStores = true
    const lied = await cluster.dfs(['put', source])
    assert.equal(lied.code, 7, lied.stderr)
    assert.equal(lied.stdout, '')
    assert.match(lied.stderr, /^Error: keeper \S+ answered that "large-claimed\.bin" was stored, but the master has no record of this upload\n$/)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
  })
})
