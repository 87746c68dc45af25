import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import Database from 'better-sqlite3'

import {MasterTable} from '../src/roles/master/table.js'
import {clusterPerTest, randomFile, sha256File, tempDir} from './helpers/cluster.js'

// The replicas table as masters made it while they recorded each keeper's local path.
const OLD_REPLICAS = `
CREATE TABLE replicas (
  file_id    TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  keeper_id  TEXT NOT NULL REFERENCES keepers(id),
  path       TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, keeper_id)
);
CREATE INDEX replicas_by_keeper ON replicas(keeper_id);
`

function columnsOfReplicas(file: string): string[] {
  const db = new Database(file, {readonly: true})
  try {
    return (db.pragma('table_info(replicas)') as Array<{name: string}>).map((column) => column.name)
  } finally {
    db.close()
  }
}

describe('a master table made when the master recorded keeper paths', () => {
  const clusters = clusterPerTest()

  test('opens without the path column and keeps every row, also when opened again', async () => {
    const dir = await tempDir()
    try {
      const file = join(dir, 'master.sqlite3')
      const old = new Database(file)
      old.exec(`
        CREATE TABLE keepers (id TEXT PRIMARY KEY, url TEXT NOT NULL, alive INTEGER NOT NULL DEFAULT 0, last_heartbeat INTEGER,
          stored_bytes INTEGER NOT NULL DEFAULT 0, free_bytes INTEGER NOT NULL DEFAULT 0, registered_at INTEGER NOT NULL);
        CREATE TABLE files (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at INTEGER NOT NULL);
        ${OLD_REPLICAS}
        INSERT INTO keepers (id, url, registered_at) VALUES ('kA', 'http://127.0.0.1:1', 1), ('kB', 'http://127.0.0.1:2', 2);
        INSERT INTO files VALUES ('f1', 'one.mp4', 10, '${'a'.repeat(64)}', 3), ('f2', 'two.mp4', 20, '${'b'.repeat(64)}', 4);
        INSERT INTO replicas VALUES ('f1', 'kA', '/srv/a/blobs/f1', 5), ('f1', 'kB', '/srv/b/blobs/f1', 6), ('f2', 'kB', '/srv/b/blobs/f2', 7);
      `)
      old.close()
      const expected = [
        {fileId: 'f1', keeperId: 'kA'},
        {fileId: 'f1', keeperId: 'kB'},
        {fileId: 'f2', keeperId: 'kB'},
      ]
      const sorted = (rows: Array<{fileId: string; keeperId: string}>) => [...rows].sort((a, b) => a.fileId.localeCompare(b.fileId) || a.keeperId.localeCompare(b.keeperId))

      const table = new MasterTable(dir)
      assert.deepEqual(sorted(table.replicas()), expected)
      assert.deepEqual([...table.holdersOf('f1')!.holders].sort(), ['kA', 'kB'])
      // A row without a path goes in: the NOT NULL column is gone, not merely hidden.
      table.addReplica({fileId: 'f2', keeperId: 'kA'})
      table.close()
      assert.deepEqual(columnsOfReplicas(file), ['file_id', 'keeper_id', 'created_at'])

      const again = new MasterTable(dir)
      assert.deepEqual(sorted(again.replicas()), sorted([...expected, {fileId: 'f2', keeperId: 'kA'}]))
      assert.deepEqual(again.files().map((row) => row.name), ['one.mp4', 'two.mp4'])
      again.close()
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  test('a master restarted on such a table serves its files and stores new ones', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const source = join(clusters.work, 'before.bin')
    const sha256 = await randomFile(source, 64 * 1024)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const {fileId} = await cluster.stat('before.bin')
    const keeper = cluster.keepers[0]!

    await cluster.master.stop('SIGTERM')
    // Rebuilt as the old schema had it: every replica with the keeper's path, NOT NULL.
    const db = new Database(join(cluster.dir, 'master', 'master.sqlite3'))
    db.transaction(() => {
      db.exec('ALTER TABLE replicas RENAME TO replicas_now; DROP INDEX replicas_by_keeper')
      db.exec(OLD_REPLICAS)
      db.prepare('INSERT INTO replicas SELECT file_id, keeper_id, ?, created_at FROM replicas_now').run(cluster.blobPath(keeper.id, fileId))
      db.exec('DROP TABLE replicas_now')
    })()
    db.close()
    assert.ok(columnsOfReplicas(join(cluster.dir, 'master', 'master.sqlite3')).includes('path'))

    await cluster.startMaster()
    assert.deepEqual((await cluster.stat('before.bin')).replicas.map((replica) => replica.keeper), [keeper.id])
    const got = join(clusters.work, 'before.copy')
    assert.equal((await cluster.dfs(['get', 'before.bin', '-o', got])).code, 0)
    assert.equal(await sha256File(got), sha256)

    const after = join(clusters.work, 'after.bin')
    await randomFile(after, 64 * 1024)
    const put = await cluster.dfs(['put', after])
    assert.equal(put.code, 0, put.stderr)
    assert.deepEqual((await cluster.stat('after.bin')).replicas.map((replica) => replica.keeper), [keeper.id])
  })
})
