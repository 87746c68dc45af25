import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import Database from 'better-sqlite3'

import {clusterPerTest, randomFile, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'

const MiB = 1024 * 1024

/** The master's last heartbeat from a keeper, as an epoch ms (0: none). */
async function lastHeartbeat(cluster: TestCluster, id: string): Promise<number> {
  const keeper = (await cluster.keeperStatus()).find((candidate) => candidate.id === id) as {lastHeartbeat?: string | null} | undefined
  return keeper?.lastHeartbeat ? Date.parse(keeper.lastHeartbeat) : 0
}

/** The master's clock when it began to listen, from its log. */
function masterClockAtListen(master: ServerProcess): number {
  const line = master.logs.find((candidate) => candidate.includes('Server listening at'))
  const time = line && (JSON.parse(line) as {time?: number}).time
  if (!time) throw new Error(`no "Server listening" line with a time in the master's log:\n${master.logs.join('\n')}`)
  return time
}

/** Master log lines that mention all these words. */
function masterSaid(master: ServerProcess, ...words: string[]): string[] {
  return master.logs.filter((line) => words.every((word) => line.includes(word)))
}

/** Stores a file and waits for all its replicas; a put --wait all also proves replication passes ran. */
async function putAll(cluster: TestCluster, work: string, name: string): Promise<string[]> {
  const path = join(work, name)
  await randomFile(path, MiB)
  const put = await cluster.dfs(['put', path, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  return (await cluster.waitForReplicas(name, 3)).sort()
}

describe('the master\'s restart grace', () => {
  const clusters = clusterPerTest()

  test('right after a master restart keepers are not declared dead before they could send a heartbeat, and nothing is copied', async (t) => {
    const cluster = await clusters.start({keepers: 4, masterArgs: ['--heartbeat-timeout', '10s']})
    const holders = await putAll(cluster, clusters.work, 'graced.bin')
    const late = cluster.keeperById(holders[0]!)

    // The master was down for an hour: every heartbeat its table remembers is that old.
    await cluster.master.stop('SIGKILL')
    const db = new Database(join(cluster.dir, 'master', 'master.sqlite3'))
    db.prepare('UPDATE keepers SET last_heartbeat = ?').run(Date.now() - 3_600_000)
    db.close()
    // One holder is still silent when the master is back, until the master has run for a while.
    late.child.kill('SIGSTOP')
    t.after(() => void late.child.kill('SIGCONT'))
    await cluster.startMaster()
    const listening = masterClockAtListen(cluster.master)
    const others = cluster.keepers.filter((keeper) => keeper !== late)
    // Heartbeats the master stamped a second after it began to listen: its liveness sweep (every
    // 500 ms here) has run since, with the late keeper still silent.
    await waitFor('the other keepers heard a second after the restart', async () => {
      for (const keeper of others) if ((await lastHeartbeat(cluster, keeper.id)) < listening + 1000) return false
      return true
    })
    late.child.kill('SIGCONT')
    await waitFor('the late keeper heard by the new master', async () => (await lastHeartbeat(cluster, late.id)) >= listening)

    await putAll(cluster, clusters.work, 'after-restart.bin')
    assert.deepEqual(masterSaid(cluster.master, 'marked dead'), [])
    assert.deepEqual(masterSaid(cluster.master, 'copied', 'graced.bin'), [])
    assert.deepEqual((await cluster.waitForReplicas('graced.bin', 3)).sort(), holders)
  })
})
