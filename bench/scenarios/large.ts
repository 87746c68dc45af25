// Scenarios 1–3 on one large file, on a fresh cluster each run:
//   1. dfs put until it exits (= the master recorded it)  vs a bare HTTP PUT + fsync, and cp + sync;
//   2. dfs put --wait all until it exits (the write pipeline makes the 3 replicas), and a plain
//      put until the file has 3 alive replicas (the replicator's copies) vs three concurrent bare PUTs;
//   3. dfs get (all replicas) and dfs get --sources 1      vs curl from one keeper + fsync;
//      and a mid-size file (100 MiB) got several times, process start to exit, vs curl the same.
// It also reads the peak RSS of the master, the keepers and each client (scenario 5).

import {rm} from 'node:fs/promises'
import {join} from 'node:path'

import {BareServer, bareGet, barePut, copyAndSync, curl, timed, timedWithCpu} from '../baseline.js'
import type {Cluster} from '../cluster.js'
import type {Context} from '../context.js'
import {verifyFile, type DataFile} from '../data.js'
import {DFS_BIN, lastLines, startNode, type RunResult} from '../processes.js'

export interface LargeRun {
  barePutMs: number
  cpSyncMs: number
  bareTripleMs: number
  putMs: number
  /** `dfs put --wait all` of the file under another name, spawn to exit: its 3 replicas ride the write pipeline. */
  pipelinedMs: number
  replicatedMs: number
  bareGetMs: number
  getMs: number
  getSingleMs: number
  /** The mid-size file, one sample each per get: curl + fsync, and dfs get from spawn to exit. */
  midBareGetMs: number[]
  midGetMs: number[]
  /**
   * CPU seconds (user + system) of each put: the bare PUTs' servers with the bench process that
   * sends (it does nothing else meanwhile), and dfs's client and servers (keepers and master).
   * What the 2 cores of the machine had to do for each, whatever the load did to the wall clock.
   */
  cpu: {barePut: number; put: {client?: number; servers: number}; bareTriple: number; pipelined: {client?: number; servers: number}}
  /** Peak RSS in MB. */
  rss: {master?: number; keeper?: number; put?: number; get?: number; getSingle?: number}
}

export interface LargeSetup {
  servers: BareServer[]
  outDir: string
}

export async function setUpLarge(context: Context): Promise<LargeSetup> {
  const servers = await Promise.all([1, 2, 3].map(async (index) => BareServer.start(await context.dir(`bare-${index}`))))
  return {servers, outDir: await context.dir('out')}
}

export async function tearDownLarge(setup: LargeSetup): Promise<void> {
  await Promise.all(setup.servers.map((server) => server.stop()))
}

/** Copies in the background go at least this fast, or the bench gives up waiting. */
const SLOWEST_BYTES_PER_MS = 5_000

/** Gets of the mid-size file per run: each is short, so one alone says little. */
const MID_GET_SAMPLES = 5

export async function runLargeOnce(context: Context, setup: LargeSetup, file: DataFile, run: number, mid?: DataFile): Promise<LargeRun> {
  const [bare1, bare2, bare3] = setup.servers as [BareServer, BareServer, BareServer]
  const timeoutMs = 60_000 + file.size / SLOWEST_BYTES_PER_MS

  // Baselines first, on an idle machine, and removed again so that the disk does not fill up.
  const [barePutMs, barePutCpu] = await timedWithCpu([bare1], () => barePut(bare1, file))
  await bare1.clear()
  const copy = join(setup.outDir, `cp-${run}.bin`)
  const cpSyncMs = await copyAndSync(file.path, copy)
  await rm(copy, {force: true})
  const [bareTripleMs, bareTripleCpu] = await timedWithCpu([bare1, bare2, bare3], () => Promise.all([bare1, bare2, bare3].map((server) => barePut(server, file))))
  await Promise.all([bare1, bare2, bare3].map((server) => server.clear()))

  const cluster = await context.cluster()
  try {
    // 1 + 2: dfs put, while the master is polled every 20 ms for the third alive replica.
    const putCpuBefore = cluster.cpuSeconds()
    const put = startNode(DFS_BIN, ['put', file.path, '--master', cluster.masterUrl, '--json'], {measureRss: true, nodeArgs: context.nodeArgs('client'), timeoutMs}, context.root)
    const replicated = cluster.untilReplicas(file.name, 3, timeoutMs, 20)
    replicated.catch(() => {})
    const putResult = await put.done
    const putServersCpu = serversCpu(putCpuBefore, cluster.cpuSeconds())
    checkPut(putResult, file)
    const replicatedAt = await replicated
    const replicatedMs = replicatedAt - putResult.startedAt
    const pipelinedCpuBefore = cluster.cpuSeconds()
    const pipelined = await startNode(DFS_BIN, ['put', file.path, '--name', `pipelined-${file.name}`, '--wait', 'all', '--master', cluster.masterUrl, '--json'], {measureRss: true, nodeArgs: context.nodeArgs('client'), timeoutMs}, context.root).done
    const pipelinedServersCpu = serversCpu(pipelinedCpuBefore, cluster.cpuSeconds())
    checkPut(pipelined, file)

    // 3: downloads, each checked byte for byte against the generated file.
    const url = await cluster.readUrl(file.name)
    const bareOut = join(setup.outDir, `bare-get-${run}.bin`)
    const bareGetMs = await timed(() => bareGet(url, bareOut))
    await verifyFile(bareOut, file, 'bare GET')
    await rm(bareOut, {force: true})

    // Which of the two goes first alternates per run: the first one follows the puts' writes and the
    // bare get's fsync and removal more closely, which the disk may still be working off.
    const getAll = () => dfsGet(context, cluster, file, join(setup.outDir, `get-${run}.bin`), [], timeoutMs)
    const getOne = () => dfsGet(context, cluster, file, join(setup.outDir, `get-single-${run}.bin`), ['--sources', '1'], timeoutMs)
    let get: Awaited<ReturnType<typeof dfsGet>>
    let getSingle: Awaited<ReturnType<typeof dfsGet>>
    if (run % 2 === 1) {
      get = await getAll()
      getSingle = await getOne()
    } else {
      getSingle = await getOne()
      get = await getAll()
    }

    // The mid-size file: the time a user waits for `dfs get`, start-up included (no RSS probe,
    // which would add to it), each sample right after curl's.
    const midBareGetMs: number[] = []
    const midGetMs: number[] = []
    if (mid) {
      const midPut = await startNode(DFS_BIN, ['put', mid.path, '--master', cluster.masterUrl, '--json'], {nodeArgs: context.nodeArgs('client'), timeoutMs}, context.root).done
      checkPut(midPut, mid)
      await cluster.untilReplicas(mid.name, 3, timeoutMs, 20)
      const midUrl = await cluster.readUrl(mid.name)
      for (let sample = 0; sample < MID_GET_SAMPLES; sample++) {
        const out = join(setup.outDir, `mid-${run}-${sample}.bin`)
        midBareGetMs.push(await timed(() => bareGet(midUrl, out)))
        await verifyFile(out, mid, 'bare GET')
        await rm(out, {force: true})
        midGetMs.push((await dfsGet(context, cluster, mid, join(setup.outDir, `mid-get-${run}-${sample}.bin`), [], timeoutMs, false)).ms)
      }
    }

    const servers = cluster.peakRss()
    return {
      barePutMs,
      cpSyncMs,
      bareTripleMs,
      putMs: putResult.ms,
      pipelinedMs: pipelined.ms,
      replicatedMs,
      bareGetMs,
      getMs: get.ms,
      getSingleMs: getSingle.ms,
      midBareGetMs,
      midGetMs,
      cpu: {
        barePut: barePutCpu,
        put: {client: putResult.cpuS, servers: putServersCpu},
        bareTriple: bareTripleCpu,
        pipelined: {client: pipelined.cpuS, servers: pipelinedServersCpu},
      },
      rss: {master: servers.master, keeper: servers.keeper, put: putResult.peakRssMB, get: get.peakRssMB, getSingle: getSingle.peakRssMB},
    }
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }
}

function serversCpu(before: {master: number; keepers: number}, after: {master: number; keepers: number}): number {
  return after.master - before.master + (after.keepers - before.keepers)
}

export function checkPut(result: RunResult, file: DataFile): void {
  if (result.code !== 0) throw new Error(`dfs put ${file.name} failed (exit ${result.code}): ${lastLines(result.stderr)}`)
  const [outcome] = JSON.parse(result.stdout) as Array<{name?: string; size?: number; sha256?: string}>
  if (outcome?.sha256 !== file.sha256 || outcome.size !== file.size) {
    throw new Error(`dfs put ${file.name} reported ${JSON.stringify(outcome)}, expected ${file.size} bytes with sha256 ${file.sha256}`)
  }
}

export async function dfsGet(context: Context, cluster: Cluster, file: DataFile, output: string, extra: string[], timeoutMs: number, measureRss = true): Promise<RunResult> {
  const args = ['get', file.name, '-o', output, '--master', cluster.masterUrl, '--json', ...extra]
  const result = await startNode(DFS_BIN, args, {measureRss, nodeArgs: context.nodeArgs('client'), timeoutMs}, context.root).done
  if (result.code !== 0) throw new Error(`dfs get ${file.name} ${extra.join(' ')} failed (exit ${result.code}): ${lastLines(result.stderr)}`)
  await verifyFile(output, file, `dfs get ${extra.join(' ')}`.trim())
  await rm(output, {force: true})
  return result
}

export function bareGetTool(): string {
  return curl() ? 'curl' : 'undici GET'
}
