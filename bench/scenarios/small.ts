// Scenario 4: many small files. N files in one `dfs put` call, then back with one `dfs get … -o DIR`;
// then the same split over 4 client processes at once, on another fresh cluster. Reports files per
// second and the moment the last file reaches 3 alive replicas. Baselines: the same files as bare
// PUTs (+ fsync) to the bare server and bare GETs (+ fsync) from the keepers, 8 at a time; and the
// floor of any system that stores 3 replicas on this machine: each file PUT to 3 bare servers at
// once, 8 files at a time, with the CPU all those processes spent per file.

import {mkdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'

import {BareServer, bareGetUndici, barePut, eachConcurrently, timed, timedWithCpu} from '../baseline.js'
import type {Cluster} from '../cluster.js'
import type {Context} from '../context.js'
import {verifyFile, type DataFile} from '../data.js'
import {DFS_BIN, lastLines, startNode, type RunResult} from '../processes.js'

export interface SmallRun {
  barePutRate: number
  /** Files per second PUT (+ fsync) to 3 bare servers each: 3 replicas with nothing else. */
  bare3PutRate: number
  /** CPU (ms, user + system) per file of those 3-replica bare PUTs: the 3 servers and the sending process. */
  bare3CpuMs: number
  putRate: number
  /** Seconds from the start of the put until the last file has 3 alive replicas. */
  replicatedS: number
  /** Seconds from the put's exit (the last one's, with 4) until the last file has 3 alive replicas. */
  afterExitS: number
  bareGetRate: number
  getRate: number
  put4Rate: number
  replicated4S: number
  afterExit4S: number
  get4Rate: number
  /**
   * CPU time per file (ms, user + system) of the single client's put, from its start until the last
   * file had 3 replicas: the master's, the keepers' together, and the client's.
   */
  putCpuMs: {master: number; keepers: number; client?: number}
  /** Peak RSS (MB) of the single client. */
  putRss?: number
  getRss?: number
}

// As many at once as `dfs put` / `dfs get` use by default.
const BARE_CONCURRENCY = 8

export async function runSmallOnce(context: Context, files: DataFile[], dataDir: string, servers: BareServer[], run: number): Promise<SmallRun> {
  const count = files.length
  const timeoutMs = 120_000 + count * 200
  const outDir = join(context.root, 'out', `small-${run}`)
  const [server] = servers as [BareServer]

  const barePutMs = await timed(() => eachConcurrently(files, BARE_CONCURRENCY, (file) => barePut(server, file)))
  await server.clear()

  const [bare3Ms, bare3CpuS] = await timedWithCpu(servers, () => eachConcurrently(files, BARE_CONCURRENCY, async (file) => {
    await Promise.all(servers.map((bare) => barePut(bare, file)))
  }))
  const bare3CpuMs = (bare3CpuS * 1000) / count
  await Promise.all(servers.map((bare) => bare.clear()))

  // One client process for all N files.
  let single: {put: RunResult; replicatedS: number; afterExitS: number; bareGetMs: number; get: RunResult; cpuMs: SmallRun['putCpuMs']}
  let cluster = await context.cluster()
  try {
    const cpuBefore = cluster.cpuSeconds()
    const {put, replicatedS, afterExitS} = await putAll(context, cluster, [files], dataDir, timeoutMs)
    const cpuAfter = cluster.cpuSeconds()
    const perFileMs = (seconds: number) => (seconds * 1000) / count
    const cpuMs = {
      master: perFileMs(cpuAfter.master - cpuBefore.master),
      keepers: perFileMs(cpuAfter.keepers - cpuBefore.keepers),
      client: put[0]!.cpuS === undefined ? undefined : perFileMs(put[0]!.cpuS),
    }
    const where = await locate(cluster, files)
    await mkdir(outDir, {recursive: true})
    const bareGetMs = await timed(() =>
      eachConcurrently(files, BARE_CONCURRENCY, (file) => bareGetUndici(where.get(file.name)!, join(outDir, file.name))),
    )
    await verifyAll(files, outDir, 'bare GET')
    await rm(outDir, {recursive: true, force: true})
    const [get] = await getAll(context, cluster, [files], outDir, timeoutMs)
    single = {put: put[0]!, replicatedS, afterExitS, bareGetMs, get: get!, cpuMs}
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }

  // Four client processes at once, each with a quarter of the files.
  const quarters = [0, 1, 2, 3].map((index) => files.filter((_, position) => position % 4 === index)).filter((group) => group.length > 0)
  let four: {putMs: number; replicatedS: number; afterExitS: number; getMs: number}
  cluster = await context.cluster()
  try {
    const {put, replicatedS, afterExitS} = await putAll(context, cluster, quarters, dataDir, timeoutMs)
    const gets = await getAll(context, cluster, quarters, outDir, timeoutMs)
    four = {putMs: span(put), replicatedS, afterExitS, getMs: span(gets)}
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }

  const rate = (ms: number) => count / (ms / 1000)
  return {
    barePutRate: rate(barePutMs),
    bare3PutRate: rate(bare3Ms),
    bare3CpuMs,
    putRate: rate(single.put.ms),
    replicatedS: single.replicatedS,
    afterExitS: single.afterExitS,
    bareGetRate: rate(single.bareGetMs),
    getRate: rate(single.get.ms),
    put4Rate: rate(four.putMs),
    replicated4S: four.replicatedS,
    afterExit4S: four.afterExitS,
    get4Rate: rate(four.getMs),
    putCpuMs: single.cpuMs,
    putRss: single.put.peakRssMB,
    getRss: single.get.peakRssMB,
  }
}

/** From the first start to the last exit. */
function span(results: RunResult[]): number {
  return Math.max(...results.map((result) => result.startedAt + result.ms)) - Math.min(...results.map((result) => result.startedAt))
}

/**
 * One `dfs put` process per group, all at once; then GET /files is polled every 50 ms until every
 * file has 3 alive replicas. Polling starts when the puts have exited (the last file cannot be
 * replicated before it is committed), so that listing 1000 files 20 times a second does not load
 * the master while the puts are measured.
 */
export async function putAll(context: Context, cluster: Cluster, groups: DataFile[][], dataDir: string, timeoutMs: number): Promise<{put: RunResult[]; replicatedS: number; afterExitS: number}> {
  const names = new Set(groups.flat().map((file) => file.name))
  const started = performance.now()
  const puts = groups.map((group) =>
    startNode(DFS_BIN, ['put', ...group.map((file) => file.name), '--master', cluster.masterUrl, '--json'], {
      cwd: dataDir,
      measureRss: true,
      nodeArgs: context.nodeArgs('client'),
      timeoutMs,
    }, context.root).done,
  )
  const results = await Promise.all(puts)
  for (const [index, result] of results.entries()) checkPuts(result, groups[index]!)
  const replicatedAt = await cluster.untilAllReplicated(names, 3, timeoutMs, 50)
  const exited = Math.max(...results.map((result) => result.startedAt + result.ms))
  return {put: results, replicatedS: (replicatedAt - started) / 1000, afterExitS: Math.max(0, replicatedAt - exited) / 1000}
}

function checkPuts(result: RunResult, files: DataFile[]): void {
  if (result.code !== 0) throw new Error(`dfs put of ${files.length} files failed (exit ${result.code}): ${lastLines(result.stderr)}`)
  const outcomes = JSON.parse(result.stdout) as Array<{name?: string; sha256?: string; error?: string; message?: string}>
  const expected = new Map(files.map((file) => [file.name, file.sha256]))
  const wrong = outcomes.filter((outcome) => outcome.error !== undefined || expected.get(outcome.name ?? '') !== outcome.sha256)
  if (outcomes.length !== files.length || wrong.length > 0) {
    throw new Error(`dfs put: ${outcomes.length} outcomes for ${files.length} files; ${wrong.length} wrong, e.g. ${JSON.stringify(wrong[0])}`)
  }
}

/** One `dfs get NAME… -o DIR` process per group, all at once; every file checked afterwards. */
export async function getAll(context: Context, cluster: Cluster, groups: DataFile[][], outDir: string, timeoutMs: number): Promise<RunResult[]> {
  await mkdir(outDir, {recursive: true})
  const gets = groups.map((group) =>
    startNode(DFS_BIN, ['get', ...group.map((file) => file.name), '-o', outDir, '--master', cluster.masterUrl, '--json'], {
      measureRss: true,
      nodeArgs: context.nodeArgs('client'),
      timeoutMs,
    }, context.root).done,
  )
  const results = await Promise.all(gets)
  for (const result of results) {
    if (result.code !== 0) throw new Error(`dfs get of many files failed (exit ${result.code}): ${lastLines(result.stderr)}`)
  }

  await verifyAll(groups.flat(), outDir, 'dfs get')
  await rm(outDir, {recursive: true, force: true})
  return results
}

async function verifyAll(files: DataFile[], dir: string, what: string): Promise<void> {
  await eachConcurrently(files, 16, (file) => verifyFile(join(dir, file.name), file, what))
}

/** For the bare GET baseline: a URL of one alive replica per file, with its grant (asked before the clock starts). */
async function locate(cluster: Cluster, files: DataFile[]): Promise<Map<string, string>> {
  const where = new Map<string, string>()
  await eachConcurrently(files, 4, async (file) => {
    where.set(file.name, await cluster.readUrl(file.name))
  })
  return where
}
