import assert from 'node:assert/strict'
import {mkdir, readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

// The longest names the protocol allows (255 bytes of UTF-8), which are also the longest a Linux
// file system takes as one path component: every step must work without adding a byte to them.
const NAMES = {
  'plain ASCII': 'a'.repeat(251) + '.mp4',
  'UTF-8 multibyte': '€'.repeat(85),
}

interface Listed {
  name: string
  size: number
  sha256: string
  replicas: number
}

interface Stat {
  name: string
  size: number
  sha256: string
  replicas: Array<{keeper: string; alive: boolean; path: string}>
}

describe('a name of 255 bytes works end to end', () => {
  const clusters = clusterPerTest()

  for (const [kind, name] of Object.entries(NAMES)) {
    test(`${kind}: put, ls, stat, get to a directory and to -o FILE, rm`, async () => {
      assert.equal(Buffer.byteLength(name, 'utf8'), 255)
      const cluster = await clusters.start({keepers: 3})
      const local = join(clusters.work, kind.replaceAll(' ', '-'))
      await mkdir(local)
      // The local file carries the name too, so put takes it from the path as a user's would.
      const source = join(local, name)
      const sha256 = await randomFile(source, 3 * 1024 * 1024 + 17)

      const put = await cluster.dfs(['put', source, '--wait', 'all'])
      assert.equal(put.code, 0, put.stderr)

      const listed = await cluster.dfsJson<Listed[]>(['ls'])
      assert.deepEqual(
        listed.map(({name, size, sha256, replicas}) => ({name, size, sha256, replicas})),
        [{name, size: 3 * 1024 * 1024 + 17, sha256, replicas: 3}],
      )
      const table = await cluster.dfs(['ls'])
      assert.equal(table.code, 0, table.stderr)
      assert.ok(table.stdout.includes(name), `ls prints the whole name:\n${table.stdout}`)

      const stat = await cluster.dfsJson<Stat>(['stat', name])
      assert.equal(stat.name, name)
      assert.equal(stat.sha256, sha256)
      assert.equal(stat.replicas.filter((replica) => replica.alive).length, 3)
      for (const replica of stat.replicas) assert.equal(await sha256File(replica.path), sha256, `replica on ${replica.keeper}`)

      // Into a directory: the file there is named by the stored name, nothing else is left beside it.
      const intoDir = join(local, 'downloads')
      await mkdir(intoDir)
      const got = await cluster.dfs(['get', name, '-o', intoDir])
      assert.equal(got.code, 0, got.stderr)
      assert.deepEqual(await readdir(intoDir), [name])
      assert.equal(await sha256File(join(intoDir, name)), sha256)

      // To a named file, itself 255 bytes long, in a directory of its own.
      const outDir = join(local, 'out')
      await mkdir(outDir)
      const outName = 'b'.repeat(255)
      const gotFile = await cluster.dfs(['get', name, '-o', join(outDir, outName)])
      assert.equal(gotFile.code, 0, gotFile.stderr)
      assert.deepEqual(await readdir(outDir), [outName])
      assert.equal(await sha256File(join(outDir, outName)), sha256)

      const removed = await cluster.dfs(['rm', name])
      assert.equal(removed.code, 0, removed.stderr)
      assert.deepEqual(await cluster.dfsJson<Listed[]>(['ls']), [])
      const gone = await cluster.dfs(['stat', name])
      assert.equal(gone.code, 3, gone.stderr)
      // Every keeper deletes its replica: blob and description.
      await waitFor('every keeper to delete its replica', async () => (await blobsOf(cluster)).length === 0)
    })
  }
})

async function blobsOf(cluster: TestCluster): Promise<string[]> {
  const lists = await Promise.all(cluster.keepers.map((keeper) => readdir(join(cluster.dataDirOf(keeper), 'blobs'))))
  return lists.flat()
}
