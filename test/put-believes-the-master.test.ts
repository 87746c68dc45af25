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

  // A file over put's in-memory size (8 MiB) is hashed while it is sent and then sealed, a smaller
  // one is announced with its sha256: the keeper lies at the end of either path.
  for (const [path, name, size] of [
    ['announced', 'claimed.bin', 200 * 1024],
    ['one-pass (sealed)', 'large-claimed.bin', 9 * 1024 * 1024],
  ] as const) {
    test(`a keeper that claims a ${path} upload it never stored: put fails with one line, nothing is recorded, and an honest put then succeeds`, async (t) => {
      const cluster = await clusters.start({keepers: 0, replicas: 1})
      const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
      const source = join(clusters.work, name)
      await randomFile(source, size)

      proxy.fakeStores = true
      const lied = await cluster.dfs(['put', source])
      assert.equal(lied.code, 7, lied.stderr)
      assert.equal(lied.stdout, '')
      const quoted = name.replaceAll('.', '\\.')
      assert.match(lied.stderr, new RegExp(`^Error: keeper \\S+ answered that "${quoted}" was stored, but the master has no record of this upload\n$`))
      assert.deepEqual(await cluster.dfsJson(['ls']), [])

      // The same keeper, honest again: the same put succeeds.
      proxy.fakeStores = false
      const honest = await cluster.dfs(['put', source])
      assert.equal(honest.code, 0, honest.stderr)
      const out = join(clusters.work, `${name}.copy`)
      assert.equal((await cluster.dfs(['get', name, '-o', out])).code, 0)
      assert.equal(await sha256File(out), await sha256File(source))
    })
  }
})
