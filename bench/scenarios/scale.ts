// Scenario 9: the cost of many files. N tiny files (default 100,000) go into the table through
// the real protocol: 4 client processes at once, each one `dfs put DIR --recursive` of a quarter
// of them, on a cluster of 4 keepers at 1 replica (N/4 files per keeper). Then, on that table:
// the master's peak RSS and bytes per file (memory and SQLite), `dfs ls` to its first line and to
// its end, `dfs stat`, `dfs fsck`, a keeper restarting and re-registering with its N/4 files,
// the master restarting until it serves, and repair. Repair: the master comes back from that
// restart with --replicas 2, so every file is under-replicated at once and the replicator works
// through the whole table, as after a keeper's death but N files deep; measured is the rate of
// files brought to 2 replicas over a window (the first SCALE_REPAIR_WINDOW files, or all when fewer).

import {stat as statPath} from 'node:fs/promises'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {Cluster, KeeperProcess} from '../cluster.js'
import type {Context} from '../context.js'
import {DFS_BIN, lastLines, peakRssMB, startNode} from '../processes.js'

export interface ScaleRun {
  files: number
  loadRate: number
  masterPeakMB: number
  /** (peak RSS − RSS before any file) ÷ files, bytes. */
  masterBytesPerFile: number
  sqliteBytesPerFile: number
  lsFirstLineMs: number
  lsMs: number
  lsClientMB?: number
  statMs: number
  fsckMs: number
  keeperFiles: number
  inventoryBytes: number
  keeperRestartMs: number
  masterRestartMs: number
  repairRate: number
}

/** The files of the scale scenario: `dirs` directories of tiny files, put one directory per client. */
export interface ScaleData {
  root: string
  dirs: string[]
  count: number
}

export const SCALE_REPAIR_WINDOW = 20_000

export async function runScaleOnce(context: Context, data: ScaleData): Promise<ScaleRun> {
  const cluster = await context.cluster({replicas: 1})
  try {
    const masterPid = () => cluster.master.pid!
    const rssBefore = currentRssBytes(masterPid()) ?? 0
    const timeoutMs = 600_000 + data.count * 50

    context.log(`9. loading ${data.count} files through ${data.dirs.length} clients`)
    const loadStart = performance.now()
    const puts = await Promise.all(
      data.dirs.map((dir) => startNode(DFS_BIN, ['put', dir, '--recursive', '--quiet', '--master', cluster.masterUrl], {cwd: data.root, timeoutMs, nodeArgs: context.nodeArgs('client')}).done),
    )
    const loadMs = performance.now() - loadStart
    for (const put of puts) if (put.code !== 0) throw new Error(`dfs put of the scale files failed (exit ${put.code}): ${lastLines(put.stderr)}`)
    const files = Number(await cluster.metric('dfs_master_files'))
    if (files !== data.count) throw new Error(`the master holds ${files} files after the load, not ${data.count}`)

    const masterPeakMB = peakRssMB(masterPid()) ?? Number.NaN
    const masterBytesPerFile = (masterPeakMB * 1e6 - rssBefore) / files

    context.log('9. dfs ls, stat, fsck')
    const ls = await timeLs(context, cluster, files)
    const name = `${data.dirs[0]}/${firstName(data)}`
    const stats: number[] = []
    for (let index = 0; index < 3; index++) stats.push((await dfs(context, ['stat', name, '--master', cluster.masterUrl], data.root)).ms)
    const fsck = await dfs(context, ['fsck', '--master', cluster.masterUrl], data.root)
    if (!/HEALTHY/.test(fsck.stdout)) throw new Error(`dfs fsck of the loaded table: ${lastLines(fsck.stdout)}`)

    context.log('9. a keeper restarts')
    const keeper = cluster.keepers[0]!
    const {count: keeperFiles, bytes: inventoryBytes} = await inventoryOf(cluster, keeper)
    const keeperSpawned = await cluster.restartKeeper(keeper)
    // It registers (its inventory) before it says it listens; the master then counts its replicas.
    const keeperBack = await cluster.until(
      async () => (await cluster.status()).some((info) => info.id === keeper.id && info.alive && info.files === keeperFiles),
      `keeper ${keeper.id} back with ${keeperFiles} files`,
      timeoutMs,
    )

    context.log('9. the master restarts (with --replicas 2: repair of every file)')
    const masterSpawned = await cluster.restartMaster(2)
    // Serving means answering a page of the listing (the table open, not rebuilding).
    const masterServes = await cluster.until(async () => (await cluster.listPage({limit: 1})).files.length === 1, 'the restarted master to list a file', timeoutMs)
    const sqliteBytes = await sizeOf(join(cluster.options.dir, 'master', 'master.sqlite3'))

    const window = Math.min(files, SCALE_REPAIR_WINDOW)
    const repairStart = performance.now()
    const repaired = await cluster.until(
      async () => files - Number(await cluster.metric('dfs_master_files_under_replicated')) >= window,
      `${window} files at 2 replicas`,
      timeoutMs,
      500,
    )

    return {
      files,
      loadRate: files / (loadMs / 1000),
      masterPeakMB,
      masterBytesPerFile,
      sqliteBytesPerFile: sqliteBytes / files,
      lsFirstLineMs: ls.firstLineMs,
      lsMs: ls.ms,
      lsClientMB: ls.peakRssMB,
      statMs: stats.sort((a, b) => a - b)[1]!,
      fsckMs: fsck.ms,
      keeperFiles,
      inventoryBytes,
      keeperRestartMs: keeperBack - keeperSpawned,
      masterRestartMs: masterServes - masterSpawned,
      repairRate: window / ((repaired - repairStart) / 1000),
    }
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }
}

async function dfs(context: Context, args: string[], cwd: string) {
  const run = await startNode(DFS_BIN, args, {cwd, nodeArgs: context.nodeArgs('client')}).done
  if (run.code !== 0) throw new Error(`dfs ${args[0]} failed (exit ${run.code}): ${lastLines(run.stderr)}`)
  return run
}

/** `dfs ls` of the whole table: the moment its first line arrives and its exit, from the spawn. */
async function timeLs(context: Context, cluster: Cluster, files: number): Promise<{firstLineMs: number; ms: number; peakRssMB?: number}> {
  const scratch = await context.dir('scale-probe')
  const {proc, done} = startNode(DFS_BIN, ['ls', '--master', cluster.masterUrl], {measureRss: true, nodeArgs: context.nodeArgs('client')}, scratch)
  let firstLineAt: number | undefined
  proc.child.stdout!.once('data', () => (firstLineAt = performance.now()))
  const run = await done
  if (run.code !== 0) throw new Error(`dfs ls failed (exit ${run.code}): ${lastLines(run.stderr)}`)
  // A header, then one line per file.
  const lines = run.stdout.trimEnd().split('\n').length
  if (lines !== files + 1) throw new Error(`dfs ls printed ${lines} lines for ${files} files`)
  return {firstLineMs: firstLineAt! - run.startedAt, ms: run.ms, peakRssMB: run.peakRssMB}
}

/** How many replicas the table puts on `keeper`, and the bytes of the inventory it registers them with. */
async function inventoryOf(cluster: Cluster, keeper: KeeperProcess): Promise<{count: number; bytes: number}> {
  let count = 0
  let bytes = 0
  let after: string | undefined
  do {
    const page = await cluster.listPage({limit: 1000, after})
    for (const file of page.files) {
      if (!file.keepers.includes(keeper.id)) continue
      count++
      // As the keeper sends each item in its register body (protocol.ts InventoryItem).
      bytes += JSON.stringify({fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, createdAt: Date.parse(file.createdAt)}).length + 1
    }

    after = page.next
  } while (after !== undefined)
  return {count, bytes}
}

function firstName(data: ScaleData): string {
  const digits = String(Math.ceil(data.count / data.dirs.length)).length
  return `f-${'1'.padStart(digits, '0')}.bin`
}

/** The database and its write-ahead log. */
async function sizeOf(database: string): Promise<number> {
  let bytes = 0
  for (const path of [database, `${database}-wal`]) bytes += await statPath(path).then((info) => info.size, () => 0)
  return bytes
}

/** VmRSS of a live process in bytes. */
function currentRssBytes(pid: number): number | undefined {
  const mb = peakRssMB(pid, 'VmRSS')
  return mb === undefined ? undefined : mb * 1e6
}
