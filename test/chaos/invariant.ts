// The end of a chaos run. Every process is back and every disk freed; the run waits until the
// cluster has settled (observable state only: every damaged replica found, fsck healthy, no
// delete order still pending, no transfer under way, every keeper's disk holding exactly the
// replicas the master's table gives it), then checks the final state against the model and reads
// every file back. Anything that never settles is a finding when the deadline (a hang guard) ends
// the wait; once settled, nothing is forgiven.

import {createHash} from 'node:crypto'
import {mkdir, rm} from 'node:fs/promises'
import {join} from 'node:path'

import Database from 'better-sqlite3'

import {sha256File, waitFor, type TestCluster} from '../helpers/cluster.js'
import {GRANT_HEADER} from '../../src/lib/grants.js'
import type {FileInfo, FileSummary, FsckReport} from '../../src/lib/protocol.js'
import type {Corruption} from './chaos.js'
import {blobIsGoodOrGone, blobsIn, transfersIn} from './disk-faults.js'
import {formatBytes, type Finding, type Journal} from './journal.js'
import type {ListedFile, Model} from './model.js'
import {errorLine, runDfs} from './proc.js'

export interface VerifyOptions {
  workDir: string
  settleDeadlineMs: number
  commandTimeoutMs: number
  corruptions: Corruption[]
  log: (line: string) => void
}

export interface VerifyFigures {
  settleMs: number
  settled: boolean
  fsck?: FsckReport['summary'] & {status: string}
  corruptionsRepaired: number
  /** Names the workload used; of them present at the end (from a put that succeeded), and absent. */
  names: number
  present: number
  presentConfirmed: number
  absent: number
  filesVerified: number
  bytesVerified: number
  replicasVerified: number
  replicaBytesVerified: number
  /** Blobs on keepers' disks that the master's table does not give to that keeper. */
  strayBlobs: number
  /** Replicas the master's table records that are not on their keeper's disk, or not byte-exact. */
  phantomReplicas: number
  lost: number
  bytesLost: number
}

/** A way in which the cluster is not (yet) settled; a finding if it still holds at the deadline. */
type Problem = Finding

export async function verifyInvariant(cluster: TestCluster, model: Model, journal: Journal, options: VerifyOptions): Promise<VerifyFigures> {
  const figures: VerifyFigures = {
    settleMs: 0,
    settled: false,
    corruptionsRepaired: 0,
    names: model.names.length,
    present: 0,
    presentConfirmed: 0,
    absent: 0,
    filesVerified: 0,
    bytesVerified: 0,
    replicasVerified: 0,
    replicaBytesVerified: 0,
    strayBlobs: 0,
    phantomReplicas: 0,
    lost: 0,
    bytesLost: 0,
  }
  const started = Date.now()

  // 1. Every replica the run damaged is found: dropped, or replaced by a good copy.
  if (options.corruptions.length > 0) {
    options.log(`waiting for the cluster to find the ${options.corruptions.length} damaged replica(s)…`)
    const unrepaired = async () => (await Promise.all(options.corruptions.map(async (damage) => ((await blobIsGoodOrGone(damage.path, damage.sha256)) ? undefined : damage)))).filter((damage) => damage !== undefined)
    let left = options.corruptions
    await waitFor('every damaged replica to be found', async () => (left = await unrepaired()).length === 0, options.settleDeadlineMs).catch(() => {})
    figures.corruptionsRepaired = options.corruptions.length - left.length
    for (const damage of left) {
      journal.violation({
        kind: 'corruption-not-found',
        message: `the replica of "${damage.name}" (${damage.fileId}) on keeper ${damage.keeperId}, damaged at ${(damage.at / 1000).toFixed(1)} s (bytes ${damage.offsets.join(', ')}), is still on its disk with the wrong bytes after ${options.settleDeadlineMs / 1000} s`,
        names: [damage.name],
        ids: [damage.fileId, damage.keeperId],
      })
    }
  }

  // 2. Settle: wait until nothing is left to do, then the disks must match the table exactly.
  options.log(`settling: waiting for fsck healthy, no pending deletes, no transfers, and every keeper's disk matching the master's table (deadline ${options.settleDeadlineMs / 1000} s)…`)
  const table = new TableView(join(cluster.dir, 'master', 'master.sqlite3'))
  let problems: Problem[] = []
  let fsck: FsckReport | undefined
  try {
    const settleStarted = Date.now()
    figures.settled = await waitFor(
      'the cluster to settle',
      async () => {
        ;({problems, fsck} = await clusterProblems(cluster, table))
        return problems.length === 0
      },
      options.settleDeadlineMs,
    ).catch(() => false)
    figures.settleMs = Date.now() - settleStarted
  } finally {
    table.close()
  }

  if (fsck) figures.fsck = {status: fsck.status, ...fsck.summary}
  journal.event('CHECK', `settle ${figures.settled ? 'done' : 'NOT done'} after ${figures.settleMs} ms: ${JSON.stringify(figures.fsck)}`)
  for (const problem of problems) {
    if (problem.kind === 'stray-blob') figures.strayBlobs++
    if (problem.kind === 'phantom-replica') figures.phantomReplicas++
    journal.violation(problem)
  }

  // 3. The master's listing against the model.
  const listing = await cluster.masterJson<{files: FileSummary[]}>('/files')
  const listed = new Map<string, ListedFile>(listing.body.files.map((file) => [file.name, file]))
  const verdict = model.judgeFinal(listed)
  for (const finding of verdict.findings) journal.violation(finding)
  figures.present = verdict.present.length
  figures.presentConfirmed = verdict.present.filter((file) => file.confirmed).length
  figures.absent = verdict.absent
  figures.lost = verdict.lost
  figures.bytesLost = verdict.bytesLost

  // 4. Every replica the master records, fetched from its keeper and hashed.
  options.log(`auditing the replicas of ${listed.size} files on their keepers…`)
  const audit = await auditReplicas(cluster, [...listed.values()], journal)
  figures.replicasVerified = audit.replicas
  figures.replicaBytesVerified = audit.bytes
  figures.phantomReplicas += audit.bad

  // 5. Every present file through the CLI, as a user reads it.
  options.log(`reading back ${verdict.present.length} files with dfs get…`)
  const read = await readBack(cluster, verdict.present, journal, options)
  figures.filesVerified = read.files
  figures.bytesVerified = read.bytes
  figures.lost += read.lost
  figures.bytesLost += read.bytesLost

  // 6. Absent names are absent for the CLI too (a few: each is a process).
  for (const name of model.names.filter((candidate) => !listed.has(candidate)).slice(0, 5)) {
    const result = await runDfs(['stat', name, '--master', cluster.masterUrl], options.commandTimeoutMs)
    if (result.code !== 3 || !/no file named/.test(result.stderr)) {
      journal.violation({kind: 'absent-file-present', message: `dfs stat of "${name}", not in the master's listing, exited ${result.code}: ${errorLine(result)}`, names: [name]})
    }
  }

  // 7. The CLI's fsck agrees.
  const cliFsck = await runDfs(['fsck', '--json', '--master', cluster.masterUrl], options.commandTimeoutMs)
  try {
    const report = JSON.parse(cliFsck.stdout) as FsckReport
    if (cliFsck.code !== 0 || report.status !== 'healthy') {
      journal.violation({kind: 'fsck', message: `dfs fsck exited ${cliFsck.code} with status ${report.status}: ${JSON.stringify(report.summary)}`})
    }
  } catch {
    journal.violation({kind: 'fsck', message: `dfs fsck --json exited ${cliFsck.code} without JSON: ${errorLine(cliFsck)}`})
  }

  journal.event('CHECK', `checks done in ${Date.now() - started} ms`)
  return figures
}

/** The master's table, read-only, for what no endpoint shows: pending deletes, tombstones. */
class TableView {
  readonly #db: Database.Database

  constructor(path: string) {
    this.#db = new Database(path, {readonly: true, fileMustExist: true, timeout: 5000})
  }

  read(): {fileIds: Set<string>; tombstones: Set<string>; replicas: Map<string, Set<string>>; pendingDeletes: Array<{keeperId: string; fileId: string; name: string}>} {
    return this.#db.transaction(() => {
      const fileIds = new Set((this.#db.prepare('SELECT id FROM files').all() as Array<{id: string}>).map((row) => row.id))
      const tombstones = new Set((this.#db.prepare('SELECT file_id AS fileId FROM tombstones').all() as Array<{fileId: string}>).map((row) => row.fileId))
      const replicas = new Map<string, Set<string>>()
      for (const row of this.#db.prepare('SELECT file_id AS fileId, keeper_id AS keeperId FROM replicas').all() as Array<{fileId: string; keeperId: string}>) {
        let set = replicas.get(row.keeperId)
        if (!set) replicas.set(row.keeperId, (set = new Set()))
        set.add(row.fileId)
      }

      const pendingDeletes = this.#db.prepare('SELECT keeper_id AS keeperId, file_id AS fileId, name FROM pending_deletes').all() as Array<{keeperId: string; fileId: string; name: string}>
      return {fileIds, tombstones, replicas, pendingDeletes}
    })()
  }

  close(): void {
    this.#db.close()
  }
}

/** What keeps the cluster from being settled right now; empty once it is. */
async function clusterProblems(cluster: TestCluster, table: TableView): Promise<{problems: Problem[]; fsck?: FsckReport}> {
  const problems: Problem[] = []
  let fsck: FsckReport | undefined
  try {
    const answer = await cluster.masterJson<FsckReport>('/fsck')
    if (answer.status === 200) fsck = answer.body
  } catch {
    // The master may be starting; asked again at the next look.
  }

  const summary = fsck?.summary
  if (!fsck || !summary || fsck.status !== 'healthy' || summary.overReplicated > 0 || summary.aliveKeepers !== cluster.keepers.length) {
    const unhealthy = (fsck?.files ?? []).filter((file) => file.health !== 'healthy')
    problems.push({
      kind: 'not-settled',
      message: `fsck is not healthy with every keeper alive: ${fsck ? JSON.stringify({status: fsck.status, ...summary}) : 'no answer'}`,
      names: unhealthy.slice(0, 10).map((file) => file.name),
      ids: unhealthy.slice(0, 10).map((file) => file.fileId),
      details: unhealthy.slice(0, 20).map((file) => JSON.stringify(file)).join('\n'),
    })
  }

  const state = table.read()
  for (const pending of state.pendingDeletes) {
    problems.push({kind: 'pending-delete', message: `keeper ${pending.keeperId} never carried out the delete of "${pending.name}" (${pending.fileId})`, names: [pending.name], ids: [pending.fileId, pending.keeperId]})
  }

  for (const [slot, dir] of cluster.keeperDirs.entries()) {
    const keeperId = cluster.keepers[slot]!.id
    const transfers = await transfersIn(dir)
    if (transfers.length > 0) problems.push({kind: 'transfer-left', message: `keeper ${keeperId} still has ${transfers.length} file(s) in tmp/: ${transfers.slice(0, 5).join(', ')}`, ids: [keeperId]})
    const recorded = new Set(state.replicas.get(keeperId) ?? [])
    for (const blob of await blobsIn(dir)) {
      if (recorded.delete(blob.fileId)) continue
      const what = `${blob.fileId}${blob.name === undefined ? '' : ` ("${blob.name}", ${formatBytes(blob.size ?? 0)})`}`
      const ids = [blob.fileId, keeperId]
      const names = blob.name === undefined ? [] : [blob.name]
      const why = !blob.described
        ? 'without a description'
        : blob.undecided
          ? 'still waiting for the master to say whether its upload was recorded'
          : state.fileIds.has(blob.fileId)
            ? 'of a file the master has, but the master does not record this replica'
            : state.tombstones.has(blob.fileId)
              ? 'of a removed file'
              : 'of no file the master knows'
      problems.push({kind: 'stray-blob', message: `keeper ${keeperId} holds blob ${what} ${why}`, names, ids})
    }

    for (const fileId of recorded) {
      problems.push({kind: 'phantom-replica', message: `the master records a replica of ${fileId} on keeper ${keeperId}, which has no such blob`, ids: [fileId, keeperId]})
    }
  }

  return {problems, fsck}
}

/** Fetches every recorded replica of every file from its keeper and checks its size and sha256. */
async function auditReplicas(cluster: TestCluster, files: ListedFile[], journal: Journal): Promise<{replicas: number; bytes: number; bad: number}> {
  type Task = {file: ListedFile; replica: FileInfo['replicas'][number]}
  const tasks: Task[] = []
  for (const file of files) {
    const {status, body} = await cluster.masterJson<FileInfo & {message?: string}>(`/files/${encodeURIComponent(file.name)}`)
    if (status !== 200 || body.fileId !== file.fileId) {
      journal.violation({
        kind: 'stat-failed',
        message: `the master listed "${file.name}" (${file.fileId}) but its stat answers ${status}${status === 200 ? ` with fileId ${body.fileId}` : `: ${body.message ?? JSON.stringify(body)}`}`,
        names: [file.name],
        ids: [file.fileId],
      })
      continue
    }

    for (const replica of body.replicas) tasks.push({file, replica})
  }

  let replicas = 0
  let bytes = 0
  let bad = 0
  let next = 0
  await Promise.all(
    [0, 1, 2, 3].map(async () => {
      while (next < tasks.length) {
        const {file, replica} = tasks[next++]!
        const problem = await checkReplica(file, replica)
        if (!problem) {
          replicas++
          bytes += file.size
          continue
        }

        bad++
        journal.violation({
          kind: 'bad-replica',
          message: `the master records a replica of "${file.name}" (${file.fileId}) on ${replica.keeper}${replica.alive ? '' : ' (dead)'}, but ${problem}`,
          names: [file.name],
          ids: [file.fileId, replica.keeper],
        })
      }
    }),
  )
  return {replicas, bytes, bad}
}

async function checkReplica(file: ListedFile, replica: FileInfo['replicas'][number]): Promise<string | undefined> {
  if (!replica.url) return 'its keeper is unknown'
  try {
    const headers = replica.grant ? {[GRANT_HEADER]: replica.grant} : undefined
    const response = await fetch(new URL(`/files/${encodeURIComponent(file.name)}?fileId=${file.fileId}`, replica.url), {headers, signal: AbortSignal.timeout(60_000)})
    if (response.status !== 200) return `the keeper answers ${response.status}: ${(await response.text()).slice(0, 200)}`
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      size += chunk.length
    }

    const sha256 = hash.digest('hex')
    if (size !== file.size || sha256 !== file.sha256) return `the keeper serves ${size} bytes with sha256 ${sha256}`
    return undefined
  } catch (error) {
    return `fetching it failed: ${String(error)}`
  }
}

/** Reads every present file back with `dfs get`, several names per command, and checks its bytes. */
async function readBack(
  cluster: TestCluster,
  files: Array<ListedFile & {confirmed: boolean}>,
  journal: Journal,
  options: VerifyOptions,
): Promise<{files: number; bytes: number; lost: number; bytesLost: number}> {
  const figures = {files: 0, bytes: 0, lost: 0, bytesLost: 0}
  const readDir = join(options.workDir, 'verify')
  const fail = (file: ListedFile & {confirmed: boolean}, kind: string, message: string, details?: string) => {
    if (file.confirmed) {
      figures.lost++
      figures.bytesLost += file.size
    }

    journal.violation({kind, message, names: [file.name], ids: [file.fileId], details})
  }

  const batches: Array<typeof files> = []
  for (let index = 0; index < files.length; index += 8) batches.push(files.slice(index, index + 8))
  const readBatch = async (batch: typeof files, slot: number) => {
    const dir = join(readDir, String(slot))
    // `get NAME -o DIR/` with one name writes to DIR/NAME only if DIR exists.
    await mkdir(dir, {recursive: true})
    const together = await runDfs(['get', ...batch.map((file) => file.name), '-o', dir + '/', '--master', cluster.masterUrl], options.commandTimeoutMs)
    for (const file of batch) {
      const path = join(dir, file.name)
      if (together.code !== 0) {
        const alone = await runDfs(['get', file.name, '-o', path, '--master', cluster.masterUrl], options.commandTimeoutMs)
        if (alone.code !== 0) {
          fail(file, 'unreadable', `"${file.name}" (${formatBytes(file.size)}) is listed but cannot be read: ${errorLine(alone)}`, alone.stderr)
          continue
        }
      }

      const sha256 = await sha256File(path).catch((error: unknown) => `(unreadable: ${String(error)})`)
      await rm(path, {force: true})
      if (sha256 !== file.sha256) {
        fail(file, 'wrong-bytes', `"${file.name}" read back with sha256 ${sha256}, the master records ${file.sha256}`)
        continue
      }

      figures.files++
      figures.bytes += file.size
    }
  }

  let next = 0
  await Promise.all(
    [0, 1].map(async (slot) => {
      while (next < batches.length) await readBatch(batches[next++]!, slot)
    }),
  )
  await rm(readDir, {recursive: true, force: true})
  return figures
}
