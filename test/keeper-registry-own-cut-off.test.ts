import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {test} from 'node:test'

import {KeeperRegistry} from '../src/roles/master/keeper-registry.js'
import {MasterTable} from '../src/roles/master/table.js'
import {tempDir, waitFor} from './helpers/cluster.js'

const STATS = {url: 'http://127.0.0.1:1', storedBytes: 0, fileCount: 0, freeBytes: 1e9, activeTransfers: 0}
const TIMEOUT_MS = 300

/** A registry on a real table, keepers a, b and c registered, and a heartbeat loop for those in `beating`. */
async function registryOfThree(t: {after: (fn: () => unknown) => void}) {
  const dir = await tempDir('dfs-registry-')
  const table = new MasterTable(dir)
  const dead: string[] = []
  const registry = new KeeperRegistry(table, TIMEOUT_MS, (id) => dead.push(id))
  for (const id of ['a', 'b', 'c']) registry.upsert(id, STATS, 'default')
  registry.start()
  const state = {beating: ['a', 'b', 'c']}
  const beats = setInterval(() => state.beating.forEach((id) => registry.heartbeat(id, STATS)), 50)
  t.after(async () => {
    clearInterval(beats)
    registry.stop()
    table.close()
    await rm(dir, {recursive: true, force: true})
  })
  const alive = () => Object.fromEntries(registry.loads().map((keeper) => [keeper.id, keeper.alive]))
  return {registry, dead, state, alive}
}

test('a keeper that falls silent while the others beat is dead, and its death is confirmed by the next heartbeat of another', async (t) => {
  const {registry, dead, state, alive} = await registryOfThree(t)
  state.beating = ['b', 'c']
  await waitFor('keeper a declared dead', () => dead.includes('a'))
  await waitFor('its death confirmed by a heartbeat of b or c', () => !registry.deathsUnconfirmed())
  assert.deepEqual(alive(), {a: false, b: true, c: true})
})

// A master cut off from every keeper loses them one by one as their timeouts run out, as far apart
// as load spreads them. Copies ordered meanwhile would land as surplus when the cut heals, and
// keepers brought back one at a time would be copied to, only to be trimmed.
test('keepers declared dead while the master hears from none stay unconfirmed; the first of them heard again brings the others back', async (t) => {
  const {registry, dead, state, alive} = await registryOfThree(t)
  state.beating = []
  await waitFor('every keeper declared dead', () => dead.length === 3)
  assert.equal(registry.deathsUnconfirmed(), true, 'deaths declared with no keeper heard since must hold repairs')
  // However long ago they died: what counts is that nobody was heard in between.
  await new Promise((resolve) => setTimeout(resolve, 2 * TIMEOUT_MS))
  assert.equal(registry.deathsUnconfirmed(), true)

  assert.equal(registry.heartbeat('c', STATS), true, 'c comes back')
  assert.equal(registry.deathsUnconfirmed(), false)
  assert.deepEqual(alive(), {a: true, b: true, c: true}, 'a and b, lost in the same silence, are back on grace')
})
