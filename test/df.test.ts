import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {FIXTURES, SAMPLES, clusterPerTest, waitFor} from './helpers/cluster.js'

type Space = {capacity: number; used: number; free: number}
type DfReport = {keepers: Array<Space & {id: string; zone: string; alive: boolean}>; total: Space}

const clusters = clusterPerTest()

test('df shows each keeper\'s capacity, used and free space, and the alive keepers\' total', async () => {
  const cluster = await clusters.start({keepers: 3, replicas: 2})
  assert.equal((await cluster.dfs(['put', join(FIXTURES, 'sample_3.mp4'), '--wait', 'all'])).code, 0)
  // The keepers report their bytes with their heartbeats.
  const report = await waitFor('both replicas counted as used', async () => {
    const df = await cluster.dfsJson<DfReport>(['df'])
    return df.total.used === 2 * SAMPLES['sample_3.mp4'].size && df
  })
  const status = await cluster.keeperStatus()
  assert.equal(report.keepers.length, 3)
  for (const keeper of report.keepers) {
    const reported = status.find((one) => one.id === keeper.id)!
    assert.equal(keeper.used, reported.storedBytes)
    // Free space moves with every heartbeat (other processes share the disk): checked within the report.
    assert.ok(keeper.free > 0)
    assert.equal(keeper.capacity, keeper.used + keeper.free)
  }

  assert.deepEqual(report.total, {
    capacity: report.keepers.reduce((sum, keeper) => sum + keeper.capacity, 0),
    used: 2 * SAMPLES['sample_3.mp4'].size,
    free: report.keepers.reduce((sum, keeper) => sum + keeper.free, 0),
  })

  const table = await cluster.dfs(['df'])
  assert.equal(table.code, 0, table.stderr)
  const lines = table.stdout.trim().split('\n')
  assert.match(lines[0]!, /^KEEPER\s+ZONE\s+ALIVE\s+CAPACITY\s+USED\s+FREE\s+USE%$/)
  for (const keeper of report.keepers) assert.match(table.stdout, new RegExp(`^${keeper.id}\\s+default\\s+yes\\s+\\S+ \\S+\\s+\\S+ \\S+\\s+\\S+ \\S+\\s+\\d+%$`, 'm'))
  assert.match(lines.at(-1)!, /^total\s+3 alive\s+\S+ \S+\s+6\.8 MiB\s+\S+ \S+\s+\d+%$/)

  // A dead keeper is listed, and left out of the total.
  const victim = cluster.keepers[0]!
  await victim.stop('SIGKILL')
  const after = await waitFor('the victim dead', async () => {
    const df = await cluster.dfsJson<DfReport>(['df'])
    return df.keepers.find((keeper) => keeper.id === victim.id)?.alive === false && df
  })
  const alive = after.keepers.filter((keeper) => keeper.alive)
  assert.equal(alive.length, 2)
  assert.equal(after.total.used, alive.reduce((sum, keeper) => sum + keeper.used, 0))
  assert.equal(after.total.capacity, alive.reduce((sum, keeper) => sum + keeper.capacity, 0))
  assert.match((await cluster.dfs(['df'])).stdout, new RegExp(`^${victim.id}\\s+default\\s+no\\s`, 'm'))
})
