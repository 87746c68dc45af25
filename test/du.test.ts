import assert from 'node:assert/strict'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, tempDir} from './helpers/cluster.js'

interface SpaceUsed {
  name: string
  files: number
  bytes: number
  replicaBytes: number
}

describe('du: logical bytes and bytes with replicas, per entry and in total', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 2})
    work = await tempDir()
    const files: Record<string, number> = {'media/a.mp4': 100, 'media/2024/b.mp4': 1000, 'media/2024/trip/c.mp4': 10, 'media.txt': 7, 'other/d': 5}
    for (const [name, size] of Object.entries(files)) {
      const path = join(work, name.replaceAll('/', '_'))
      await writeFile(path, 'x'.repeat(size))
      const put = await cluster.dfs(['put', path, '--name', name, '--wait', 'all'])
      assert.equal(put.code, 0, put.stderr)
    }
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('a folder: one row per file or folder in it, each folder holding all below it, and the total', async () => {
    const usage = await cluster.dfsJson<{total: SpaceUsed; entries: SpaceUsed[]}>(['du', 'media/'])
    assert.deepEqual(usage.total, {name: 'media/', files: 3, bytes: 1110, replicaBytes: 2220})
    assert.deepEqual(usage.entries, [
      {name: 'media/2024/', files: 2, bytes: 1010, replicaBytes: 2020},
      {name: 'media/a.mp4', files: 1, bytes: 100, replicaBytes: 200},
    ])
  })

  test('no pattern is every file; a glob counts only what it matches', async () => {
    const all = await cluster.dfsJson<{total: SpaceUsed; entries: SpaceUsed[]}>(['du'])
    assert.deepEqual([all.total.files, all.total.bytes, all.total.replicaBytes], [5, 1122, 2244])
    assert.deepEqual(all.entries.map((entry) => entry.name), ['media.txt', 'media/', 'other/'])
    const glob = await cluster.dfsJson<{total: SpaceUsed}>(['du', 'media/*.mp4'])
    assert.deepEqual([glob.total.files, glob.total.bytes], [1, 100])

    const table = await cluster.dfs(['du', 'media/'])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^1.1 KiB +2.2 KiB +3 +total of media\/$/m)
  })
})
