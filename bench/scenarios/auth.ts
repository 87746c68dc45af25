// Scenario 8: what auth costs. The same work on a cluster with a key (client tokens, the master's
// grants checked by keepers, member credentials between master and keepers: how every other
// scenario runs) and on one without (loopback only; nothing is signed or checked): small puts and
// small gets with one client process, and one `dfs get` of a mid-size file. Both clusters run in
// the same bench run, one after the other; which goes first alternates per run, so that neither
// side always meets the same state of a shared machine.

import {join} from 'node:path'

import type {Context} from '../context.js'
import type {DataFile} from '../data.js'
import {DFS_BIN, startNode} from '../processes.js'
import {checkPut, dfsGet} from './large.js'
import {getAll, putAll} from './small.js'

export interface AuthRun {
  /** Small files per second. */
  putRate: number
  getRate: number
  /** Milliseconds of `dfs get` of the mid-size file from its 3 replicas. */
  midGetMs: number
}

/** Copies in the background go at least this fast, or the bench gives up waiting. */
const SLOWEST_BYTES_PER_MS = 5_000

/** The scenario once on each kind of cluster: `withKey` first on odd runs, `withoutKey` first on even ones. */
export async function runAuthOnce(context: Context, small: DataFile[], smallDir: string, mid: DataFile, run: number): Promise<{withKey: AuthRun; withoutKey: AuthRun}> {
  const order = run % 2 === 1 ? [true, false] : [false, true]
  const results = new Map<boolean, AuthRun>()
  for (const auth of order) results.set(auth, await measure(context, small, smallDir, mid, auth, run))
  return {withKey: results.get(true)!, withoutKey: results.get(false)!}
}

async function measure(context: Context, small: DataFile[], smallDir: string, mid: DataFile, auth: boolean, run: number): Promise<AuthRun> {
  const timeoutMs = 120_000 + small.length * 200 + mid.size / SLOWEST_BYTES_PER_MS
  const outDir = join(context.root, 'out', `auth-${run}-${auth ? 'key' : 'open'}`)
  const what = auth ? 'with key' : 'no key'
  const cluster = await context.cluster({auth})
  context.log(`   ${what}: cluster up`)
  try {
    // putAll waits for every file's 3 replicas after the put, so that the gets read from all of them.
    const {put} = await putAll(context, cluster, [small], smallDir, timeoutMs)
    context.log(`   ${what}: small puts done and replicated`)
    const [get] = await getAll(context, cluster, [small], outDir, timeoutMs)
    context.log(`   ${what}: small gets done`)

    const putMid = await startNode(DFS_BIN, ['put', mid.path, '--master', cluster.masterUrl, '--json'], {nodeArgs: context.nodeArgs('client'), timeoutMs}, context.root).done
    checkPut(putMid, mid)
    await cluster.untilReplicas(mid.name, 3, timeoutMs)
    const midGet = await dfsGet(context, cluster, mid, join(await context.dir('out'), `auth-mid-${run}-${auth ? 'key' : 'open'}.bin`), [], timeoutMs)

    const rate = (ms: number) => small.length / (ms / 1000)
    return {putRate: rate(put[0]!.ms), getRate: rate(get!.ms), midGetMs: midGet.ms}
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }
}
