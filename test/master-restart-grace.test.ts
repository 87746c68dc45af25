import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {clusterPerTest, randomFile, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'

const MiB = 1024 * 1024

/** The master's last heartbeat from a keeper, as an epoch ms (0: none). */
async function lastHeartbeat(cluster: TestCluster, id: string): Promise<number> {
  const keeper = (await cluster.keeperStatus()).find((candidate) => candidate.id === id) as {lastHeartbeat?: string | null} | undefined
  return keeper?.lastHeartbeat ? Date.parse(keeper.lastHeartbeat) : 0
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
    const timeoutMs = 4000
    const cluster = await clusters.start({keepers: 4, masterArgs: ['--heartbeat-timeout', `${timeoutMs}ms`]})
    const holders = await putAll(cluster, clusters.work, 'graced.bin')
    const late = cluster.keeperById(holders[0]!)

    await cluster.master.stop('SIGKILL')
    // Down for longer than the timeout: every heartbeat the table knows of is older than that.
    await sleep(timeoutMs + 500)
    // One holder is still silent when the master is back; it resumes well within one timeout.
    late.child.kill('SIGSTOP')
    t.after(() => void late.child.kill('SIGCONT'))
    await cluster.startMaster()
    // While the late keeper is paused, its last heartbeat is the grace the new master gave it: the
    // same moment for every keeper, so a later one is a real heartbeat.
    const grace = await lastHeartbeat(cluster, late.id)
    const others = cluster.keepers.filter((keeper) => keeper !== late)
    await waitFor('the other keepers heard by the new master', async () => {
      for (const keeper of others) if ((await lastHeartbeat(cluster, keeper.id)) <= grace) return false
      return true
    })
    late.child.kill('SIGCONT')
    await waitFor('the late keeper heard by the new master', async () => (await lastHeartbeat(cluster, late.id)) > grace)

    await putAll(cluster, clusters.work, 'after-restart.bin')
    assert.deepEqual(masterSaid(cluster.master, 'marked dead'), [])
    assert.deepEqual(masterSaid(cluster.master, 'copied', 'graced.bin'), [])
    assert.deepEqual((await cluster.waitForReplicas('graced.bin', 3)).sort(), holders)
  })
})
