import {mkdirSync} from 'node:fs'
import {join} from 'node:path'

import Database from 'better-sqlite3'

import {prefixUpperBound} from '../../lib/name-patterns.js'
import {MAX_NAME_BYTES} from '../../lib/names.js'
import {DEFAULT_ZONE, type DeleteCommand, type MediaInfo, type RenameCommand} from '../../lib/protocol.js'

/** Sorts after every valid name (at most MAX_NAME_BYTES of UTF-8, and U+10FFFF is the last code point, 4 bytes). */
const PAST_EVERY_NAME = '\u{10FFFF}'.repeat(Math.ceil((MAX_NAME_BYTES + 1) / 4))

export interface FileRow {
  fileId: string
  name: string
  size: number
  sha256: string
  createdAt: number
  /** What the keeper that took the upload read of it, if it is an mp4 (or other ISO-BMFF) file. */
  media?: MediaInfo | null
}

export interface KeeperRow {
  id: string
  url: string
  alive: boolean
  lastHeartbeat: number | null
  storedBytes: number
  freeBytes: number
  registeredAt: number
  zone: string
  /** Set by an admin's drain: `draining` while its files are copied away, `drained` once it holds none the cluster needs. */
  drain: KeeperDrain | null
}

export type KeeperDrain = 'draining' | 'drained'

export interface ReplicaRow {
  fileId: string
  keeperId: string
}

/** A replica a rebuild of the table did not use, and why. */
export interface SetAsideRow {
  fileId: string
  keeperId: string
  name: string
  size: number
  sha256: string
  /** When its generation was uploaded, if its description says. */
  createdAt?: number
  reason: string
}

const FILE_COLUMNS = 'id AS fileId, name, size, sha256, created_at AS createdAt, media'

/**
 * A page of the listing (parameters from pageParameters): a walk of the index of the unique name
 * from `from` that stops at the end of the prefix's range or at the limit; a search filters the
 * rows on the way (LIKE: ASCII letters match either case). One lower bound only: given two (`name >=
 * prefix AND name > after`), SQLite seeks by one of them, the prefix, and stepped over every name
 * before `after`, so a page deep in the listing cost its position and a walk of every page O(N²).
 */
export const FILES_PAGE_SQL = `SELECT ${FILE_COLUMNS} FROM files
  WHERE name >= @from AND name < @upto AND name <> @after AND (@search = '' OR name LIKE @pattern ESCAPE '\\')
  ORDER BY name LIMIT @limit`

/** The parameters of FILES_PAGE_SQL (and, but for from, after and limit, of the page's count). */
export function pageParameters(query: {prefix?: string; search?: string; after?: string; limit?: number}): {from: string; upto: string; after: string; search: string; pattern: string; limit: number} {
  const prefix = query.prefix ?? ''
  const after = query.after ?? ''
  const search = query.search ?? ''
  // Names sort as UTF-8 bytes (BINARY), as code points do: the names that start with the prefix
  // sort before the first string past all of them. Without one (an empty prefix), a string past
  // every name a file may have keeps the index range bounded. Past `after` (which is left out) or
  // from the prefix, whichever comes later.
  const from = Buffer.compare(Buffer.from(after), Buffer.from(prefix)) > 0 ? after : prefix
  return {from, upto: prefixUpperBound(prefix) ?? PAST_EVERY_NAME, after, search, pattern: `%${search.replace(/[\\%_]/g, (char) => `\\${char}`)}%`, limit: query.limit ?? -1}
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS keepers (
  id             TEXT PRIMARY KEY,
  url            TEXT NOT NULL,
  alive          INTEGER NOT NULL DEFAULT 0,
  last_heartbeat INTEGER,
  stored_bytes   INTEGER NOT NULL DEFAULT 0,
  free_bytes     INTEGER NOT NULL DEFAULT 0,
  registered_at  INTEGER NOT NULL,
  zone           TEXT NOT NULL DEFAULT 'default',
  drain          TEXT
);
CREATE TABLE IF NOT EXISTS files (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  size       INTEGER NOT NULL,
  sha256     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  media      TEXT
);
CREATE TABLE IF NOT EXISTS replicas (
  file_id    TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  keeper_id  TEXT NOT NULL REFERENCES keepers(id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, keeper_id)
);
CREATE INDEX IF NOT EXISTS replicas_by_keeper ON replicas(keeper_id);
-- Corrupt replicas found (by a keeper's scrubber or a reader) since the file was last at target.
CREATE TABLE IF NOT EXISTS corrupt_replicas (
  file_id     TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  keeper_id   TEXT NOT NULL,
  detected_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, keeper_id, detected_at)
);
-- Generations of deleted files: a keeper that reports one is told to delete it.
CREATE TABLE IF NOT EXISTS tombstones (
  file_id    TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  deleted_at INTEGER NOT NULL
);
-- Client tokens revoked before their expiry, by id (the token's jti); checked on every request.
CREATE TABLE IF NOT EXISTS revoked_tokens (
  id         TEXT PRIMARY KEY,
  revoked_at INTEGER NOT NULL
);
-- Replicas a rebuild of the table (--recover) found and did not use: an older generation of a name,
-- or a description other keepers contradict. Their keepers keep them; an operator decides.
CREATE TABLE IF NOT EXISTS set_aside (
  file_id    TEXT NOT NULL,
  keeper_id  TEXT NOT NULL,
  name       TEXT NOT NULL,
  size       INTEGER NOT NULL,
  sha256     TEXT NOT NULL,
  created_at INTEGER,
  reason     TEXT NOT NULL,
  found_at   INTEGER NOT NULL,
  PRIMARY KEY (file_id, keeper_id)
);
-- Replicas of deleted files that a keeper still has to remove (it may be down when the file goes).
CREATE TABLE IF NOT EXISTS pending_deletes (
  keeper_id TEXT NOT NULL,
  file_id   TEXT NOT NULL,
  name      TEXT NOT NULL,
  PRIMARY KEY (keeper_id, file_id)
);
-- Replicas whose file was renamed (dfs mv) and whose keeper has not yet rewritten its description.
CREATE TABLE IF NOT EXISTS pending_renames (
  keeper_id TEXT NOT NULL,
  file_id   TEXT NOT NULL,
  name      TEXT NOT NULL,
  PRIMARY KEY (keeper_id, file_id)
);
`

/** What the replicator needs of one file, kept in memory beside the table. */
export interface FileHolders {
  fileId: string
  name: string
  size: number
  /** Keepers recorded as holding a replica, alive or not. */
  holders: Set<string>
}

/**
 * The master's durable table in SQLite: files, the keepers that hold their replicas, and the
 * keepers themselves. WAL with synchronous=FULL: a confirmed upload survives a crash.
 */
export class MasterTable {
  readonly #db: Database.Database
  readonly #statements
  /**
   * An index of the files and replicas tables (and of pending deletes by file) in memory, so that
   * replication passes do not rescan the tables. Every write below updates it right after its
   * statement; a transaction that fails reloads it from the database (which rolled back).
   */
  readonly #holders = new Map<string, FileHolders>()
  readonly #doomed = new Map<string, Set<string>>()
  /** The writes the next COMMIT makes durable, if any are pending (see #begin). */
  #group: CommitGroup | undefined
  /** Told the id of every file whose replicas, pending deletes or existence changed. */
  onFileChanged: (fileId: string) => void = () => {}

  constructor(dataDir: string) {
    mkdirSync(dataDir, {recursive: true})
    this.#db = new Database(join(dataDir, 'master.sqlite3'))
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma('synchronous = FULL')
    this.#db.pragma('foreign_keys = ON')
    this.#db.pragma('busy_timeout = 5000')
    this.#db.exec(SCHEMA)
    dropKeeperPaths(this.#db)
    addZonesAndDrains(this.#db)
    addMedia(this.#db)
    const db = this.#db
    const fileColumns = FILE_COLUMNS
    // Every write joins the group transaction (#begin): one COMMIT, one fsync, per event-loop turn.
    const write = (sql: string) => {
      const statement = db.prepare(sql)
      return {
        run: (...parameters: unknown[]): Database.RunResult => {
          this.#begin()
          try {
            return statement.run(...parameters)
          } catch (error) {
            this.#noteRollback(error)
            throw error
          }
        },
      }
    }
    const keeperColumns = `id, url, alive, last_heartbeat AS lastHeartbeat, stored_bytes AS storedBytes,
      free_bytes AS freeBytes, registered_at AS registeredAt, zone, drain`
    this.#statements = {
      fileByName: db.prepare(`SELECT ${fileColumns} FROM files WHERE name = ?`),
      fileById: db.prepare(`SELECT ${fileColumns} FROM files WHERE id = ?`),
      files: db.prepare(`SELECT ${fileColumns} FROM files ORDER BY name`),
      filesPage: db.prepare(FILES_PAGE_SQL),
      countPage: db.prepare(`SELECT COUNT(*) AS count FROM files
        WHERE name >= @prefix AND name < @upto AND (@search = '' OR name LIKE @pattern ESCAPE '\\')`),
      insertFile: write('INSERT INTO files (id, name, size, sha256, created_at, media) VALUES (?, ?, ?, ?, ?, ?)'),
      deleteFile: write('DELETE FROM files WHERE id = ?'),
      renameFile: write('UPDATE files SET name = ? WHERE id = ?'),
      addPendingRename: write('INSERT OR REPLACE INTO pending_renames (keeper_id, file_id, name) VALUES (?, ?, ?)'),
      pendingRenames: db.prepare('SELECT file_id AS fileId, name FROM pending_renames WHERE keeper_id = ?'),
      // Only the order for the name that is current: an ack of an older rename leaves the newer one queued.
      clearPendingRename: write('DELETE FROM pending_renames WHERE keeper_id = ? AND file_id = ? AND name = ?'),
      clearPendingRenamesOfFile: write('DELETE FROM pending_renames WHERE file_id = ?'),
      clearPendingRenamesOf: write('DELETE FROM pending_renames WHERE keeper_id = ?'),
      addTombstone: write('INSERT OR IGNORE INTO tombstones (file_id, name, deleted_at) VALUES (?, ?, ?)'),
      isTombstoned: db.prepare('SELECT 1 FROM tombstones WHERE file_id = ?'),
      replicasOf: db.prepare('SELECT file_id AS fileId, keeper_id AS keeperId FROM replicas WHERE file_id = ?'),
      replicasOn: db.prepare('SELECT file_id AS fileId, keeper_id AS keeperId FROM replicas WHERE keeper_id = ?'),
      replicas: db.prepare('SELECT file_id AS fileId, keeper_id AS keeperId FROM replicas'),
      insertReplica: write(`INSERT INTO replicas (file_id, keeper_id, created_at) VALUES (?, ?, ?)
        ON CONFLICT (file_id, keeper_id) DO NOTHING`),
      deleteReplica: write('DELETE FROM replicas WHERE file_id = ? AND keeper_id = ?'),
      keeper: db.prepare(`SELECT ${keeperColumns} FROM keepers WHERE id = ?`),
      keepers: db.prepare(`SELECT ${keeperColumns} FROM keepers ORDER BY registered_at, id`),
      upsertKeeper: write(`INSERT INTO keepers (id, url, alive, last_heartbeat, stored_bytes, free_bytes, registered_at, zone, drain)
        VALUES (@id, @url, @alive, @lastHeartbeat, @storedBytes, @freeBytes, @registeredAt, @zone, @drain)
        ON CONFLICT (id) DO UPDATE SET url = excluded.url, alive = excluded.alive, last_heartbeat = excluded.last_heartbeat,
          stored_bytes = excluded.stored_bytes, free_bytes = excluded.free_bytes, zone = excluded.zone, drain = excluded.drain`),
      deleteKeeper: write('DELETE FROM keepers WHERE id = ?'),
      deleteReplicasOn: write('DELETE FROM replicas WHERE keeper_id = ?'),
      clearPendingDeletesOf: write('DELETE FROM pending_deletes WHERE keeper_id = ?'),
      addCorrupt: write('INSERT OR IGNORE INTO corrupt_replicas (file_id, keeper_id, detected_at) VALUES (?, ?, ?)'),
      clearCorrupt: write('DELETE FROM corrupt_replicas WHERE file_id = ?'),
      corruptCounts: db.prepare('SELECT file_id AS fileId, COUNT(*) AS count FROM corrupt_replicas GROUP BY file_id'),
      allPendingDeletes: db.prepare('SELECT keeper_id AS keeperId, file_id AS fileId FROM pending_deletes'),
      pendingDeletes: db.prepare('SELECT file_id AS fileId, name FROM pending_deletes WHERE keeper_id = ?'),
      addPendingDelete: write('INSERT OR IGNORE INTO pending_deletes (keeper_id, file_id, name) VALUES (?, ?, ?)'),
      clearPendingDelete: write('DELETE FROM pending_deletes WHERE keeper_id = ? AND file_id = ?'),
      countFiles: db.prepare('SELECT (SELECT COUNT(*) FROM files) + (SELECT COUNT(*) FROM tombstones) AS count'),
      addSetAside: write(`INSERT INTO set_aside (file_id, keeper_id, name, size, sha256, created_at, reason, found_at)
        VALUES (@fileId, @keeperId, @name, @size, @sha256, @createdAt, @reason, @foundAt)
        ON CONFLICT (file_id, keeper_id) DO NOTHING`),
      isSetAside: db.prepare('SELECT 1 FROM set_aside WHERE file_id = ?'),
      setAside: db.prepare(`SELECT file_id AS fileId, keeper_id AS keeperId, name, size, sha256, created_at AS createdAt, reason
        FROM set_aside ORDER BY name, file_id, keeper_id`),
      revokeToken: write('INSERT OR IGNORE INTO revoked_tokens (id, revoked_at) VALUES (?, ?)'),
      isTokenRevoked: db.prepare('SELECT 1 FROM revoked_tokens WHERE id = ?'),
      probe: db.prepare('SELECT 1 FROM files LIMIT 1'),
    }
    this.#loadIndex()
  }

  #loadIndex(): void {
    this.#holders.clear()
    this.#doomed.clear()
    for (const file of this.files()) this.#holders.set(file.fileId, {fileId: file.fileId, name: file.name, size: file.size, holders: new Set()})
    for (const replica of this.replicas()) this.#holders.get(replica.fileId)?.holders.add(replica.keeperId)
    for (const {keeperId, fileId} of this.#statements.allPendingDeletes.all() as Array<{keeperId: string; fileId: string}>) {
      this.#doomSet(fileId).add(keeperId)
    }
  }

  #doomSet(fileId: string): Set<string> {
    let keepers = this.#doomed.get(fileId)
    if (!keepers) this.#doomed.set(fileId, (keepers = new Set()))
    return keepers
  }

  #changed(fileId: string): void {
    this.onFileChanged(fileId)
  }

  /** Every file with the keepers holding it (from memory). */
  allHolders(): IterableIterator<FileHolders> {
    return this.#holders.values()
  }

  /** One file with the keepers holding it (from memory). */
  holdersOf(fileId: string): FileHolders | undefined {
    return this.#holders.get(fileId)
  }

  /** Keepers that still have to delete a replica of this file (from memory). */
  doomedHolders(fileId: string): string[] | undefined {
    const keepers = this.#doomed.get(fileId)
    return keepers && keepers.size > 0 ? [...keepers] : undefined
  }

  fileByName(name: string): FileRow | undefined {
    return fileRow(this.#statements.fileByName.get(name) as StoredFileRow | undefined)
  }

  fileById(fileId: string): FileRow | undefined {
    return fileRow(this.#statements.fileById.get(fileId) as StoredFileRow | undefined)
  }

  files(): FileRow[] {
    return (this.#statements.files.all() as StoredFileRow[]).map((row) => fileRow(row))
  }

  /**
   * The files whose names start with `prefix` and contain `search`, by name, after the name
   * `after`, at most `limit` (every one without), and with `total` how many match over every page
   * (a count of the whole range: a walk of every page that counted at each would be O(N²)).
   */
  filesPage(query: {prefix?: string; search?: string; after?: string; limit?: number; total?: boolean}): {files: FileRow[]; total?: number} {
    const page = pageParameters(query)
    const files = (this.#statements.filesPage.all(page) as StoredFileRow[]).map((row) => fileRow(row))
    if (!query.total) return {files}
    return {files, total: (this.#statements.countPage.get({prefix: query.prefix ?? '', upto: page.upto, search: page.search, pattern: page.pattern}) as {count: number}).count}
  }


  /**
   * Records a file with the keepers that hold it, in one transaction: its first replica after an
   * upload, or every replica found by a rebuild of the table.
   */
  insertFile(file: FileRow, keeperIds: string[]): void {
    this.transaction(() => {
      this.#statements.insertFile.run(file.fileId, file.name, file.size, file.sha256, file.createdAt, file.media ? JSON.stringify(file.media) : null)
      for (const keeperId of keeperIds) this.#statements.insertReplica.run(file.fileId, keeperId, Date.now())
      this.#holders.set(file.fileId, {fileId: file.fileId, name: file.name, size: file.size, holders: new Set(keeperIds)})
    })
    this.#changed(file.fileId)
  }

  /**
   * Gives a file another name (the name index, UNIQUE, refuses one that is taken) and orders every
   * keeper holding a replica to rewrite its description, in one transaction.
   */
  renameFile(file: FileRow, name: string): void {
    this.transaction(() => {
      this.#statements.renameFile.run(name, file.fileId)
      for (const replica of this.replicasOf(file.fileId)) this.#statements.addPendingRename.run(replica.keeperId, file.fileId, name)
      const holders = this.#holders.get(file.fileId)
      if (holders) holders.name = name
    })
    this.#changed(file.fileId)
  }

  /** Forgets a file and queues the removal of every replica; returns the replicas it had. */
  deleteFile(file: FileRow): ReplicaRow[] {
    const replicas = this.transaction(() => {
      const replicas = this.replicasOf(file.fileId)
      for (const replica of replicas) this.#statements.addPendingDelete.run(replica.keeperId, file.fileId, file.name)
      this.#statements.deleteFile.run(file.fileId)
      this.#statements.clearPendingRenamesOfFile.run(file.fileId)
      this.#statements.addTombstone.run(file.fileId, file.name, Date.now())
      this.#holders.delete(file.fileId)
      for (const replica of replicas) this.#doomSet(file.fileId).add(replica.keeperId)
      return replicas
    })
    this.#changed(file.fileId)
    return replicas
  }

  /** Whether this generation of a file was deleted. */
  isDeleted(fileId: string): boolean {
    return this.#statements.isTombstoned.get(fileId) !== undefined
  }

  replicasOf(fileId: string): ReplicaRow[] {
    return this.#statements.replicasOf.all(fileId) as ReplicaRow[]
  }

  replicasOn(keeperId: string): ReplicaRow[] {
    return this.#statements.replicasOn.all(keeperId) as ReplicaRow[]
  }

  replicas(): ReplicaRow[] {
    return this.#statements.replicas.all() as ReplicaRow[]
  }

  addReplica(replica: ReplicaRow): void {
    this.#statements.insertReplica.run(replica.fileId, replica.keeperId, Date.now())
    const file = this.#holders.get(replica.fileId)
    if (file && !file.holders.has(replica.keeperId)) {
      file.holders.add(replica.keeperId)
      this.#changed(replica.fileId)
    }
  }

  removeReplica(fileId: string, keeperId: string): void {
    this.#statements.deleteReplica.run(fileId, keeperId)
    if (this.#holders.get(fileId)?.holders.delete(keeperId)) this.#changed(fileId)
  }

  keeper(id: string): KeeperRow | undefined {
    const row = this.#statements.keeper.get(id) as (Omit<KeeperRow, 'alive'> & {alive: number}) | undefined
    return row && {...row, alive: row.alive === 1}
  }

  keepers(): KeeperRow[] {
    const rows = this.#statements.keepers.all() as Array<Omit<KeeperRow, 'alive'> & {alive: number}>
    return rows.map((row) => ({...row, alive: row.alive === 1}))
  }

  saveKeeper(keeper: KeeperRow): void {
    this.#statements.upsertKeeper.run({...keeper, alive: keeper.alive ? 1 : 0})
  }

  /** Forgets a keeper, its replicas and the deletes it still owed, in one transaction; returns how many replicas it had. */
  forgetKeeper(id: string): number {
    const fileIds = this.replicasOn(id).map((replica) => replica.fileId)
    this.transaction(() => {
      this.#statements.deleteReplicasOn.run(id)
      this.#statements.clearPendingDeletesOf.run(id)
      this.#statements.clearPendingRenamesOf.run(id)
      this.#statements.deleteKeeper.run(id)
      for (const fileId of fileIds) this.#holders.get(fileId)?.holders.delete(id)
      for (const [fileId, keepers] of this.#doomed) if (keepers.delete(id) && keepers.size === 0) this.#doomed.delete(fileId)
    })
    for (const fileId of fileIds) this.#changed(fileId)
    return fileIds.length
  }

  /** Drops a corrupt replica from the table and remembers that it was found. */
  markCorrupt(fileId: string, keeperId: string): void {
    this.transaction(() => {
      this.#statements.deleteReplica.run(fileId, keeperId)
      this.#statements.addCorrupt.run(fileId, keeperId, Date.now())
      this.#holders.get(fileId)?.holders.delete(keeperId)
    })
    this.#changed(fileId)
  }

  /** The file is back at its target: its corrupt replicas are history. */
  clearCorrupt(fileId: string): void {
    this.#statements.clearCorrupt.run(fileId)
  }

  corruptCounts(): Map<string, number> {
    const rows = this.#statements.corruptCounts.all() as Array<{fileId: string; count: number}>
    return new Map(rows.map((row) => [row.fileId, row.count]))
  }

  /** The rename orders a keeper has still to carry out. */
  pendingRenames(keeperId: string): RenameCommand[] {
    return this.#statements.pendingRenames.all(keeperId) as RenameCommand[]
  }

  addPendingRename(keeperId: string, command: RenameCommand): void {
    this.#statements.addPendingRename.run(keeperId, command.fileId, command.name)
  }

  clearPendingRename(keeperId: string, command: RenameCommand): void {
    this.#statements.clearPendingRename.run(keeperId, command.fileId, command.name)
  }

  pendingDeletes(keeperId: string): DeleteCommand[] {
    return this.#statements.pendingDeletes.all(keeperId) as DeleteCommand[]
  }

  /** Every queued delete: file id → keepers that still have to delete a replica of it. */
  pendingDeletesByFile(): Map<string, string[]> {
    const byFile = new Map<string, string[]>()
    for (const [fileId, keepers] of this.#doomed) if (keepers.size > 0) byFile.set(fileId, [...keepers])
    return byFile
  }

  addPendingDelete(keeperId: string, command: DeleteCommand): void {
    this.#statements.addPendingDelete.run(keeperId, command.fileId, command.name)
    this.#doomSet(command.fileId).add(keeperId)
    this.#changed(command.fileId)
  }

  clearPendingDelete(keeperId: string, fileId: string): void {
    const {changes} = this.#statements.clearPendingDelete.run(keeperId, fileId)
    const keepers = this.#doomed.get(fileId)
    keepers?.delete(keeperId)
    if (keepers?.size === 0) this.#doomed.delete(fileId)
    // The keeper may take a copy of this file again.
    if (changes > 0) this.#changed(fileId)
  }

  /** Whether the table never held a file (nor a deleted one): what --recover may rebuild. */
  isEmpty(): boolean {
    return (this.#statements.countFiles.get() as {count: number}).count === 0
  }

  /** Records a replica a rebuild did not use (once per file and keeper). */
  addSetAside(row: SetAsideRow): void {
    this.#statements.addSetAside.run({...row, createdAt: row.createdAt ?? null, foundAt: Date.now()})
  }

  /**
   * Takes a recorded file out of the table, every replica of it set aside for `reason`: no
   * tombstone and no delete order, so its keepers keep it.
   */
  moveAside(file: FileRow, reason: string): void {
    this.transaction(() => {
      for (const replica of this.replicasOf(file.fileId)) {
        this.addSetAside({fileId: file.fileId, keeperId: replica.keeperId, name: file.name, size: file.size, sha256: file.sha256, createdAt: file.createdAt, reason})
      }

      this.#statements.deleteFile.run(file.fileId)
      this.#holders.delete(file.fileId)
    })
    this.#changed(file.fileId)
  }

  isSetAside(fileId: string): boolean {
    return this.#statements.isSetAside.get(fileId) !== undefined
  }

  setAside(): SetAsideRow[] {
    const rows = this.#statements.setAside.all() as Array<Omit<SetAsideRow, 'createdAt'> & {createdAt: number | null}>
    return rows.map(({createdAt, ...row}) => (createdAt === null ? row : {...row, createdAt}))
  }

  /**
   * Copies the whole database to `destination` while it stays in use (SQLite's online backup): a
   * consistent snapshot, as of one moment, of every table.
   */
  async backup(destination: string): Promise<void> {
    await this.durable()
    await this.#db.backup(destination)
  }

  /** Records a client token's id as revoked, durably; false if it already was. */
  revokeToken(id: string): boolean {
    return this.#statements.revokeToken.run(id, Date.now()).changes > 0
  }

  isTokenRevoked(id: string): boolean {
    return this.#statements.isTokenRevoked.get(id) !== undefined
  }

  /** Runs `work` in one transaction: all of its writes land, or none (and the index follows). */
  transaction<T>(work: () => T): T {
    this.#begin()
    try {
      // Inside the group transaction, a savepoint: its writes are undone alone if it fails.
      return this.#db.transaction(work)()
    } catch (error) {
      this.#noteRollback(error)
      // The database rolled back (this savepoint, or the whole group): so does the index.
      this.#loadIndex()
      throw error
    }
  }

  /**
   * Resolves once every write made until now is committed and fsynced (at once if none is
   * pending); rejects if their commit failed. The master answers no request before this: an answer
   * never tells of a write that a crash could still undo.
   */
  durable(): Promise<void> {
    return this.#group?.committed ?? Promise.resolve()
  }

  /**
   * Opens the group transaction on the first write of an event-loop turn; it commits when the turn's
   * I/O has been handled (setImmediate), so that the writes of every request read meanwhile share
   * one fsync (group commit) instead of one each: with synchronous=FULL an fsync blocks the
   * master's thread for milliseconds.
   */
  #begin(): void {
    if (!this.#group) {
      let resolve!: () => void
      let reject!: (error: unknown) => void
      const committed = new Promise<void>((resolveGroup, rejectGroup) => {
        resolve = resolveGroup
        reject = rejectGroup
      })
      // Writes made with nobody waiting (a timer's) must not crash the process when a commit fails.
      committed.catch(() => {})
      this.#group = {committed, resolve, reject}
      setImmediate(() => this.#commit())
    }

    if (!this.#db.inTransaction) this.#db.exec('BEGIN')
  }

  /** After a failed write: SQLite may have rolled back the whole group (a full disk, an I/O error), losing its earlier writes. */
  #noteRollback(error: unknown): void {
    if (this.#group && !this.#db.inTransaction) this.#group.lost ??= error
  }

  #commit(): void {
    const group = this.#group
    if (!group) return
    this.#group = undefined
    try {
      if (group.lost !== undefined) throw group.lost
      this.#db.exec('COMMIT')
      group.resolve()
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK')
      this.#loadIndex()
      group.reject(error)
    }
  }

  /** Throws unless the database is open and answers a read (the master's readiness). */
  probe(): void {
    this.#statements.probe.get()
  }

  close(): void {
    this.#commit()
    this.#db.close()
  }
}

/**
 * Tables made before the master stopped recording keeper-local paths have `replicas.path` (NOT
 * NULL, so new rows without it would fail): drop it, keeping every row. Runs on each open; a
 * table without the column is left alone.
 */
function dropKeeperPaths(db: Database.Database): void {
  if (columnsOf(db, 'replicas').has('path')) db.exec('ALTER TABLE replicas DROP COLUMN path')
}

/** Tables made before zones and drains lack their columns in `keepers`. */
function addZonesAndDrains(db: Database.Database): void {
  const columns = columnsOf(db, 'keepers')
  if (!columns.has('zone')) db.exec(`ALTER TABLE keepers ADD COLUMN zone TEXT NOT NULL DEFAULT '${DEFAULT_ZONE}'`)
  if (!columns.has('drain')) db.exec('ALTER TABLE keepers ADD COLUMN drain TEXT')
}

/** Tables made before the master kept what keepers read of mp4 files lack `files.media` (JSON). */
function addMedia(db: Database.Database): void {
  if (!columnsOf(db, 'files').has('media')) db.exec('ALTER TABLE files ADD COLUMN media TEXT')
}

/** Writes of one event-loop turn, committed together (MasterTable.#begin). */
interface CommitGroup {
  committed: Promise<void>
  resolve: () => void
  reject: (error: unknown) => void
  /** Why SQLite rolled the group back on its own, if it did: the commit then fails. */
  lost?: unknown
}

/** A row of `files` as SQLite gives it: `media` is JSON text. */
type StoredFileRow = Omit<FileRow, 'media'> & {media: string | null}

function fileRow(row: StoredFileRow): FileRow
function fileRow(row: StoredFileRow | undefined): FileRow | undefined
function fileRow(row: StoredFileRow | undefined): FileRow | undefined {
  return row && {...row, media: row.media === null ? null : (JSON.parse(row.media) as MediaInfo)}
}

function columnsOf(db: Database.Database, table: string): Set<string> {
  return new Set((db.pragma(`table_info(${table})`) as Array<{name: string}>).map((column) => column.name))
}
