// Scenario 7: repair. N files of 1 MiB at 3 replicas; one keeper (the one holding most) is
// SIGKILLed; measured is the time until every file is back at 3 alive replicas. The master runs
// with a short heartbeat timeout, the keepers beat every 200 ms. The copy time in the target is
// measured in the same run: the lost files as bare PUTs (+ fsync), 4 at a time.

import {performance} from 'node:perf_hooks'

import {BareServer, barePut, eachConcurrently, timed} from '../baseline.js'
import type {Context} from '../context.js'
import type {DataFile} from '../data.js'
import {DFS_BIN, lastLines, startNode} from '../processes.js'

export const REPAIR_HEARTBEAT_TIMEOUT_MS = 1000
export const REPAIR_HEARTBEAT_INTERVAL_MS = 200

export interface RepairRun {
  /** From SIGKILL until the master marked the keeper dead. */
  detectMs: number
  /** From SIGKILL until every file had 3 alive replicas again. */
  repairMs: number
  /** Bare PUTs of the lost replicas. */
  copyMs: number
  lostFiles: number
}

export async function runRepairOnce(context: Context, files: DataFile[], dataDir: string, server: BareServer): Promise<RepairRun> {
  const cluster = await context.cluster({
    heartbeatTimeout: `${REPAIR_HEARTBEAT_TIMEOUT_MS}ms`,
    heartbeatInterval: `${REPAIR_HEARTBEAT_INTERVAL_MS}ms`,
  })
  try {
    const names = new Set(files.map((file) => file.name))
    const put = await startNode(DFS_BIN, ['put', ...names, '--master', cluster.masterUrl, '--json'], {cwd: dataDir, timeoutMs: 300_000}).done
    if (put.code !== 0) throw new Error(`dfs put of the repair files failed (exit ${put.code}): ${lastLines(put.stderr)}`)
    await cluster.untilAllReplicated(names, 3, 300_000, 50)

    const status = await cluster.status()
    const victim = status.filter((keeper) => keeper.alive).sort((a, b) => b.files - a.files)[0]!
    const keeper = cluster.keepers.find((candidate) => candidate.id === victim.id)!
    const lost = files.slice(0, victim.files)
    const copyMs = await timed(() => eachConcurrently(lost, 4, (file) => barePut(server, file)))
    await server.clear()

    cluster.killKeeper(keeper)
    const killedAt = performance.now()
    // Until the master marks it dead its replicas still count as alive, so wait for that first.
    const detectedAt = await cluster.until(
      async () => (await cluster.status()).some((info) => info.id === victim.id && !info.alive),
      'the killed keeper to be marked dead',
      60_000,
      20,
    )
    const repairedAt = await cluster.untilAllReplicated(names, 3, 300_000, 20)
    return {detectMs: detectedAt - killedAt, repairMs: repairedAt - killedAt, copyMs, lostFiles: victim.files}
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }
}
