// The end of a chaos run: once every process is back and the cluster has settled, every confirmed
// file must read back byte-exact, every removed one must be gone, and every replica the master
// records must really be on its keeper with the right bytes.

import {createHash} from 'node:crypto'
import {mkdir, readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {json, sha256File, type TestCluster} from '../helpers/cluster.js'
import type {FsckReport, FileInfo, FileSummary} from '../../src/lib/protocol.js'
import {formatBytes, type Journal} from './journal.js'
import type {FileEntry, Model} from './model.js'
import {errorLine, runDfs} from './proc.js'

export interface VerifyOptions {
  workDir: string
  settleDeadlineMs: number
  commandTimeoutMs: number
  log: (line: string) => void
}

export interface VerifyFigures {
  settleMs: number
  settled: boolean
  fsck?: FsckReport['summary'] & {status: string}
  confirmed: number
  removed: number
  unknown: number
  unknownPresent: number
  filesVerified: number
  bytesVerified: number
  replicasVerified: number
  replicaBytesVerified: number
  /** Replicas the master records that their keeper does not have (or has wrong). */
  phantomReplicas: number
  removedGone: number
  filesLost: number
  bytesLost: number
  orphanBlobs: number
}

/** Waits until fsck says every file is at its target and every keeper alive; returns the last report. */
export async function waitForSettled(cluster: TestCluster, deadlineMs: number): Promise<{report?: FsckReport; settled: boolean; ms: number}> {
  const started = Date.now()
  let report: FsckReport | undefined
  for (;;) {
    try {
      const answer = await json<FsckReport>(`${cluster.masterUrl}/fsck`)
      if (answer.status === 200) report = answer.body
    } catch {
      // The master may be starting; try again.
    }

    const summary = report?.summary
    if (report && summary && report.status === 'healthy' && summary.overReplicated === 0 && summary.aliveKeepers === cluster.keepers.length) {
      return {report, settled: true, ms: Date.now() - started}
    }

    if (Date.now() - started > deadlineMs) return {report, settled: false, ms: Date.now() - started}
    await sleep(200)
  }
}

export async function verifyInvariant(cluster: TestCluster, model: Model, journal: Journal, options: VerifyOptions): Promise<VerifyFigures> {
  const figures: VerifyFigures = {
    settleMs: 0,
    settled: false,
    confirmed: model.count('confirmed'),
    removed: model.count('removed'),
    unknown: model.count('unknown'),
    unknownPresent: 0,
    filesVerified: 0,
    bytesVerified: 0,
    replicasVerified: 0,
    replicaBytesVerified: 0,
    phantomReplicas: 0,
    removedGone: 0,
    filesLost: 0,
    bytesLost: 0,
    orphanBlobs: 0,
  }

  // 1. Settle: every file at its target on alive keepers.
  options.log(`settling: waiting for fsck to show every file healthy (deadline ${options.settleDeadlineMs / 1000} s)…`)
  const settle = await waitForSettled(cluster, options.settleDeadlineMs)
  figures.settleMs = settle.ms
  figures.settled = settle.settled
  if (settle.report) figures.fsck = {status: settle.report.status, ...settle.report.summary}
  journal.event('CHECK', `settle ${settle.settled ? 'done' : 'NOT done'} after ${settle.ms} ms: ${JSON.stringify(figures.fsck)}`)
  if (!settle.settled) {
    const unhealthy = (settle.report?.files ?? []).filter((file) => file.health !== 'healthy')
    const finding = {
      kind: 'not-settled',
      message: `the cluster did not settle within ${options.settleDeadlineMs / 1000} s: fsck ${JSON.stringify(figures.fsck)}`,
      names: unhealthy.slice(0, 10).map((file) => file.name),
      ids: unhealthy.slice(0, 10).map((file) => file.fileId),
      details: unhealthy.slice(0, 20).map((file) => JSON.stringify(file)).join('\n'),
    }
    // Files short of replicas (or with none) after everything is back are a repair failure; only
    // surplus replicas left over is a lesser thing.
    if (settle.report?.status !== 'healthy' || (figures.fsck?.aliveKeepers ?? 0) !== cluster.keepers.length) journal.violation(finding)
    else journal.warning(finding)
  }

  // 2. The master's table against the model.
  const listing = await json<{files: FileSummary[]}>(`${cluster.masterUrl}/files`)
  const listed = new Map(listing.body.files.map((file) => [file.name, file]))
  const toRead: FileEntry[] = []
  const lose = (entry: FileEntry, kind: string, message: string, details?: string) => {
    figures.filesLost++
    figures.bytesLost += entry.current.size
    journal.violation({kind, message, names: [entry.name], ids: [entry.current.fileId ?? ''].filter(Boolean), details})
  }

  for (const entry of model.files.values()) {
    const file = listed.get(entry.name)
    if (entry.state === 'confirmed') {
      if (!file) lose(entry, 'lost-file', `confirmed "${entry.name}" (${formatBytes(entry.current.size)}, ${entry.why}) is not in the master's table`)
      else if (file.sha256 !== entry.current.sha256 || file.size !== entry.current.size) {
        lose(entry, 'wrong-record', `confirmed "${entry.name}" is recorded as ${file.size} bytes sha256 ${file.sha256}, it was put as ${entry.current.size} bytes sha256 ${entry.current.sha256}`)
      } else toRead.push(entry)
    } else if (entry.state === 'removed') {
      if (file) journal.violation({kind: 'removed-file-present', message: `"${entry.name}" was removed (rm exited 0) but is listed again (fileId ${file.fileId})`, names: [entry.name], ids: [file.fileId]})
      else figures.removedGone++
    } else if (file) {
      figures.unknownPresent++
      if (entry.why.startsWith('put failed')) {
        journal.warning({kind: 'put-failed-but-stored', message: `"${entry.name}" is stored (fileId ${file.fileId}) though its put failed with: ${entry.why.slice('put failed: '.length)}`, names: [entry.name], ids: [file.fileId]})
      }

      if (file.sha256 !== entry.current.sha256) {
        journal.violation({kind: 'unknown-file-wrong', message: `"${entry.name}" (${entry.why}) exists with sha256 ${file.sha256}, not the ${entry.current.sha256} that was put`, names: [entry.name], ids: [file.fileId]})
      } else toRead.push(entry)
    }
  }

  for (const file of listed.values()) {
    if (!model.files.has(file.name)) journal.violation({kind: 'unexpected-file', message: `"${file.name}" is listed but was never put`, names: [file.name], ids: [file.fileId]})
  }

  // 3. Every replica the master records: on its keeper, with the right bytes.
  options.log(`auditing the replicas of ${listed.size} files on their keepers…`)
  const audit = await auditReplicas(cluster, [...listed.values()], journal)
  figures.replicasVerified = audit.replicas
  figures.replicaBytesVerified = audit.bytes
  figures.phantomReplicas = audit.phantoms

  // 4. Every confirmed file through the CLI, as a user reads it, checked against the model.
  options.log(`reading back ${toRead.length} files with dfs get…`)
  const readDir = join(options.workDir, 'verify')
  const batches: FileEntry[][] = []
  for (let index = 0; index < toRead.length; index += 8) batches.push(toRead.slice(index, index + 8))
  const readBatch = async (batch: FileEntry[], slot: number) => {
    const dir = join(readDir, String(slot))
    // `get NAME -o DIR/` with one name writes to DIR/NAME only if DIR exists.
    await mkdir(dir, {recursive: true})
    let result = await runDfs(['get', ...batch.map((entry) => entry.name), '-o', dir + '/', '--master', cluster.masterUrl], options.commandTimeoutMs)
    const singles = result.code === 0 ? [] : batch
    for (const entry of batch) {
      if (singles.includes(entry)) {
        result = await runDfs(['get', entry.name, '-o', join(dir, entry.name), '--master', cluster.masterUrl], options.commandTimeoutMs)
        if (result.code !== 0) {
          const line = errorLine(result)
          if (entry.state === 'confirmed') lose(entry, 'unreadable', `confirmed "${entry.name}" (${formatBytes(entry.current.size)}) cannot be read: ${line}`, result.stderr)
          else journal.violation({kind: 'unreadable', message: `"${entry.name}" (${entry.why}) is listed but cannot be read: ${line}`, names: [entry.name]})
          continue
        }
      }

      const path = join(dir, entry.name)
      const sha256 = await sha256File(path).catch((error: unknown) => `(unreadable: ${String(error)})`)
      await rm(path, {force: true})
      if (sha256 !== entry.current.sha256) {
        if (entry.state === 'confirmed') lose(entry, 'wrong-bytes', `"${entry.name}" read back with sha256 ${sha256}, it was put with ${entry.current.sha256}`)
        else journal.violation({kind: 'wrong-bytes', message: `"${entry.name}" (${entry.why}) read back with sha256 ${sha256}, it was put with ${entry.current.sha256}`, names: [entry.name]})
        continue
      }

      if (entry.state === 'confirmed') {
        figures.filesVerified++
        figures.bytesVerified += entry.current.size
      }
    }
  }

  let next = 0
  await Promise.all(
    [0, 1].map(async (slot) => {
      while (next < batches.length) await readBatch(batches[next++]!, slot)
    }),
  )

  // 5. Removed files are gone for the CLI too (a few, each is a process).
  for (const entry of model.byState('removed').slice(0, 5)) {
    const result = await runDfs(['stat', entry.name, '--master', cluster.masterUrl], options.commandTimeoutMs)
    if (result.code !== 3 || !/no file named/.test(result.stderr)) {
      journal.violation({kind: 'removed-file-present', message: `dfs stat of the removed "${entry.name}" exited ${result.code}: ${errorLine(result)}`, names: [entry.name]})
    }
  }

  // 6. The CLI's fsck agrees.
  const fsck = await runDfs(['fsck', '--json', '--master', cluster.masterUrl], options.commandTimeoutMs)
  try {
    const report = JSON.parse(fsck.stdout) as FsckReport
    if (fsck.code !== 0 || report.status !== 'healthy') {
      journal.violation({kind: 'fsck', message: `dfs fsck exited ${fsck.code} with status ${report.status}: ${JSON.stringify(report.summary)}`})
    }
  } catch {
    journal.violation({kind: 'fsck', message: `dfs fsck --json exited ${fsck.code} without JSON: ${errorLine(fsck)}`})
  }

  // 7. Leftovers on the keepers' disks: replicas of files the master no longer has (removed,
  // trimmed). Deletes travel with heartbeats, so give them a moment.
  const fileIds = new Set([...listed.values()].map((file) => file.fileId))
  let orphans: string[] = []
  for (let attempt = 0; attempt < 25; attempt++) {
    orphans = await orphanBlobs(cluster, fileIds)
    if (orphans.length === 0) break
    await sleep(200)
  }

  figures.orphanBlobs = orphans.length
  if (orphans.length > 0) {
    journal.warning({kind: 'orphan-blobs', message: `${orphans.length} blobs on keepers' disks belong to no file in the master's table`, details: orphans.slice(0, 20).join('\n'), ids: orphans.slice(0, 5).map((orphan) => orphan.split(': ')[1]!)})
  }

  return figures
}

/**
 * Fetches every recorded replica of every file from its keeper and checks its sha256. A replica
 * that fails is looked at again a few seconds later (the master may be about to drop it); one
 * still recorded and still bad then is a violation: the master counts a copy that is not there.
 */
async function auditReplicas(cluster: TestCluster, files: FileSummary[], journal: Journal): Promise<{replicas: number; bytes: number; phantoms: number}> {
  type Task = {file: FileSummary; replica: FileInfo['replicas'][number]}
  const replicasOf = async (file: FileSummary) => {
    const {status, body} = await json<FileInfo>(`${cluster.masterUrl}/files/${encodeURIComponent(file.name)}`)
    return status === 200 && body.fileId === file.fileId ? body.replicas : []
  }

  const tasks: Task[] = []
  for (const file of files) for (const replica of await replicasOf(file)) tasks.push({file, replica})
  let replicas = 0
  let bytes = 0
  const check = async (list: Task[]) => {
    const bad: Array<Task & {problem: string}> = []
    let next = 0
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (next < list.length) {
          const task = list[next++]!
          const problem = await checkReplica(task.file, task.replica)
          if (problem) bad.push({...task, problem})
          else {
            replicas++
            bytes += task.file.size
          }
        }
      }),
    )
    return bad
  }

  let bad = await check(tasks)
  if (bad.length > 0) {
    await sleep(3000)
    const again: Task[] = []
    for (const {file, replica} of bad) {
      const now = (await replicasOf(file)).find((candidate) => candidate.keeper === replica.keeper)
      if (now) again.push({file, replica: now})
    }

    bad = await check(again)
  }

  const real = new Map<string, number>()
  for (const {file} of tasks) real.set(file.name, (real.get(file.name) ?? 0) + 1)
  for (const {file} of bad) real.set(file.name, real.get(file.name)! - 1)
  for (const {file, replica, problem} of bad) {
    journal.violation({
      kind: 'phantom-replica',
      message:
        `the master records a replica of "${file.name}" (${file.fileId}) on ${replica.keeper}${replica.alive ? '' : ' (dead)'}, but ${problem}; ` +
        `the file really has ${real.get(file.name)} good replicas while the master counts ${file.replicas} alive`,
      names: [file.name],
      ids: [file.fileId, replica.keeper],
    })
  }

  return {replicas, bytes, phantoms: bad.length}
}

async function checkReplica(file: FileSummary, replica: FileInfo['replicas'][number]): Promise<string | undefined> {
  if (!replica.url) return 'its keeper is unknown'
  try {
    const response = await fetch(new URL(`/files/${encodeURIComponent(file.name)}?fileId=${file.fileId}`, replica.url), {signal: AbortSignal.timeout(60_000)})
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

/** `keeper <id>` lines for blobs whose file id the master does not know. */
async function orphanBlobs(cluster: TestCluster, fileIds: Set<string>): Promise<string[]> {
  const orphans: string[] = []
  for (const [slot, dir] of cluster.keeperDirs.entries()) {
    const entries = await readdir(join(dir, 'blobs')).catch(() => [] as string[])
    for (const entry of entries) {
      if (entry.endsWith('.json')) continue
      if (!fileIds.has(entry)) orphans.push(`keeper ${cluster.keepers[slot]?.id ?? slot}: ${entry}`)
    }
  }

  return orphans
}
