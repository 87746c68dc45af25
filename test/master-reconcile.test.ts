import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {rm} from 'node:fs/promises'
import {after, before, describe, test} from 'node:test'

import {Master} from '../src/roles/master/master.js'
import {tempDir} from './helpers/cluster.js'

const quiet = {info() {}, warn() {}}
const stats = (url: string) => ({url, freeBytes: 1e12, storedBytes: 0, fileCount: 0, activeTransfers: 0})

// The master's reconciliation of a keeper's inventory, driven directly: no network is involved
// because every file already has its target of replicas.
describe('a returning keeper is reconciled against the table', () => {
  let dir: string
  let master: Master
  const sha256 = createHash('sha256').update('x').digest('hex')

  before(async () => {
    dir = await tempDir()
    master = new Master({dataDir: dir, replicas: 3, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: quiet})
    for (const id of ['kA', 'kB', 'kC', 'kD']) master.register({id, ...stats(`http://127.0.0.1:1/${id}`), inventory: []})
  })
  after(async () => {
    await master.stop()
    await rm(dir, {recursive: true, force: true})
  })

  const storeOn = async (name: string, keepers: string[]) => {
    const ticket = await master.beginUpload({name, size: 1, sha256})
    master.commitUpload(ticket.uploadId, {keeperId: ticket.keeper.id, name, size: 1, sha256})
    for (const keeperId of keepers) master.reportReplica(name, {keeperId, fileId: ticket.uploadId, size: 1, sha256})
    return {fileId: ticket.uploadId, holders: new Set([ticket.keeper.id, ...keepers])}
  }

  test('a replica queued for deletion is not counted again when its keeper reports it', async () => {
    const {fileId} = await storeOn('trimmed.mp4', ['kA', 'kB', 'kC', 'kD'])
    // What a trim does: the surplus copy on kA leaves the table and a delete order is queued.
    master.table.removeReplica(fileId, 'kA')
    master.table.addPendingDelete('kA', {fileId, name: 'trimmed.mp4'})

    const response = master.register({id: 'kA', ...stats('http://127.0.0.1:1/kA'), inventory: [{fileId, name: 'trimmed.mp4', size: 1, sha256}]})
    assert.deepEqual(response.deletes, [{fileId, name: 'trimmed.mp4'}])
    assert.ok(!(await master.stat('trimmed.mp4')).replicas.some((replica) => replica.keeper === 'kA'))
    // The order stands (and kA gets no new copy of the file) until kA says it carried it out.
    assert.deepEqual(master.heartbeat('kA', stats('http://127.0.0.1:1/kA')).deletes, [{fileId, name: 'trimmed.mp4'}])
    assert.deepEqual(master.heartbeat('kA', {...stats('http://127.0.0.1:1/kA'), deleted: [fileId]}).deletes, [])
  })

  test('a known replica is attached again, one of a deleted file is to be deleted, an unknown one is left alone', async () => {
    const kept = await storeOn('kept.mp4', ['kA', 'kB', 'kC'])
    const gone = await storeOn('gone.mp4', ['kA', 'kB', 'kC'])
    master.table.removeReplica(kept.fileId, 'kB')
    master.remove('gone.mp4')

    const inventory = [
      {fileId: kept.fileId, name: 'kept.mp4', size: 1, sha256},
      {fileId: gone.fileId, name: 'gone.mp4', size: 1, sha256},
      {fileId: 'neverHeardOf', name: 'stranger.mp4', size: 1, sha256},
    ]
    const response = master.register({id: 'kB', ...stats('http://127.0.0.1:1/kB'), inventory})
    assert.ok((await master.stat('kept.mp4')).replicas.some((replica) => replica.keeper === 'kB'))
    assert.deepEqual(response.deletes.map((command) => command.fileId), [gone.fileId])
  })

  test('replicas the table has on a keeper that no longer reports them are detached', async () => {
    await storeOn('lost.mp4', ['kC', 'kD'])
    master.register({id: 'kD', ...stats('http://127.0.0.1:1/kD'), inventory: []})
    assert.ok(!(await master.stat('lost.mp4')).replicas.some((replica) => replica.keeper === 'kD'))
  })
})
