import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {FIXTURES, SAMPLES, TestCluster, sha256File, tempDir, waitFor} from './helpers/cluster.js'

describe('master restart', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 3})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`after ${signal} the same --data brings back every file and keeper, and keepers come back alive on their own`, async () => {
      const name = `sample_2-${signal}.mp4`
      assert.equal((await cluster.dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--name', name])).code, 0)
      await cluster.waitForReplicas(name, 3)
      const filesBefore = await cluster.dfsJson<Array<{name: string; sha256: string}>>(['ls'])
      const keepersBefore = (await cluster.keeperStatus()).map((keeper) => keeper.id).sort()

      const code = await cluster.master.stop(signal)
      if (signal === 'SIGTERM') assert.equal(code, 0, 'a graceful stop exits 0')
      await cluster.startMaster()

      const filesAfter = await cluster.dfsJson<Array<{name: string; sha256: string}>>(['ls'])
      assert.deepEqual(filesAfter.map(({name, sha256}) => ({name, sha256})), filesBefore.map(({name, sha256}) => ({name, sha256})))
      assert.deepEqual((await cluster.keeperStatus()).map((keeper) => keeper.id).sort(), keepersBefore)
      // The keepers were not restarted: their heartbeats alone bring them back.
      assert.ok(cluster.keepers.every((keeper) => !keeper.exited))
      await waitFor('every keeper alive after the master restart', async () => (await cluster.keeperStatus()).every((keeper) => keeper.alive))
      const out = join(work, name)
      assert.equal((await cluster.dfs(['get', name, '-o', out])).code, 0)
      assert.equal(await sha256File(out), SAMPLES['sample_2.mp4'].sha256)
    })
  }
})
