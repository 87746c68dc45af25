import assert from 'node:assert/strict'
import {mkdir, readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

// The longest names the protocol allows (255 bytes of UTF-8), which are also the longest a Linux
// file system takes as one path component: no step may add a byte to them.
const ASCII = 'a'.repeat(251) + '.mp4'
const MULTIBYTE = '€'.repeat(85)
const SIZE = 3 * 1024 * 1024 + 17

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
  fileId: string
  replicas: Array<{keeper: string; alive: boolean}>
}

describe('names of 255 bytes work end to end', () => {
  const clusters = clusterPerTest()

  test('plain ASCII and UTF-8 multibyte: put, ls, stat, get to a directory and to -o FILE, rm', async () => {
    assert.equal(Buffer.byteLength(ASCII, 'utf8'), 255)
    assert.equal(Buffer.byteLength(MULTIBYTE, 'utf8'), 255)
    const cluster = await clusters.start({keepers: 3})
    // The local files carry the names too, so put takes them from the paths as a user's would.
    const sha256 = new Map<string, string>()
    for (const name of [ASCII, MULTIBYTE]) sha256.set(name, await randomFile(join(clusters.work, name), SIZE))

    const put = await cluster.dfs(['put', join(clusters.work, ASCII), join(clusters.work, MULTIBYTE), '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)

    const listed = await cluster.dfsJson<Listed[]>(['ls'])
    assert.deepEqual(
      listed.map(({name, size, sha256, replicas}) => ({name, size, sha256, replicas})),
      [ASCII, MULTIBYTE].sort().map((name) => ({name, size: SIZE, sha256: sha256.get(name), replicas: 3})),
    )
    const table = await cluster.dfs(['ls'])
    assert.equal(table.code, 0, table.stderr)
    for (const name of [ASCII, MULTIBYTE]) assert.ok(table.stdout.includes(name), `ls prints the whole name:\n${table.stdout}`)

    for (const name of [ASCII, MULTIBYTE]) {
      const stat = await cluster.dfsJson<Stat>(['stat', name])
      assert.equal(stat.name, name)
      assert.equal(stat.sha256, sha256.get(name))
      assert.equal(stat.replicas.filter((replica) => replica.alive).length, 3)
      for (const replica of stat.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, stat.fileId)), sha256.get(name), `replica on ${replica.keeper}`)
    }

    // Into a directory: the files there are named by the stored names, nothing else is left beside them.
    const intoDir = join(clusters.work, 'downloads')
    await mkdir(intoDir)
    const got = await cluster.dfs(['get', ASCII, MULTIBYTE, '-o', intoDir])
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual((await readdir(intoDir)).sort(), [ASCII, MULTIBYTE].sort())
    for (const name of [ASCII, MULTIBYTE]) assert.equal(await sha256File(join(intoDir, name)), sha256.get(name))

    // One name to a named file, itself 255 bytes long, in a directory of its own.
    for (const name of [ASCII, MULTIBYTE]) {
      const outDir = join(clusters.work, `out-${name === ASCII ? 'ascii' : 'multibyte'}`)
      await mkdir(outDir)
      const outName = 'b'.repeat(255)
      const gotFile = await cluster.dfs(['get', name, '-o', join(outDir, outName)])
      assert.equal(gotFile.code, 0, gotFile.stderr)
      assert.deepEqual(await readdir(outDir), [outName])
      assert.equal(await sha256File(join(outDir, outName)), sha256.get(name))
    }

    for (const name of [ASCII, MULTIBYTE]) {
      const removed = await cluster.dfs(['rm', name])
      assert.equal(removed.code, 0, removed.stderr)
    }

    assert.deepEqual(await cluster.dfsJson<Listed[]>(['ls']), [])
    const gone = await cluster.dfs(['stat', MULTIBYTE])
    assert.equal(gone.code, 3, gone.stderr)
    // Every keeper deletes its replicas: blobs and descriptions.
    await waitFor('every keeper to delete its replicas', async () => (await blobsOf(cluster)).length === 0)
  })
})

async function blobsOf(cluster: TestCluster): Promise<string[]> {
  const lists = await Promise.all(cluster.keepers.map((keeper) => readdir(join(cluster.dataDirOf(keeper), 'blobs'))))
  return lists.flat()
}
