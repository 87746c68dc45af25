// A TestCluster spread over the hosts of a NetLab: the master on host "master", keeper i on host
// "k<i+1>", the CLI on host "client". Each test gets its own lab and cluster, torn down after it
// pass or fail; where namespaces cannot be made the test is skipped (failed under CI).

import assert from 'node:assert/strict'
import {access, rm} from 'node:fs/promises'
import {join} from 'node:path'
import type {TestContext} from 'node:test'

import {FIXTURES, SAMPLES, ServerProcess, TestCluster, sha256File, tempDir, type ClusterOptions} from '../helpers/cluster.js'
import {skipOrFail} from '../helpers/skip.js'
import {NetLab, type LabHost} from './lab.js'

export interface NetCluster {
  lab: NetLab
  cluster: TestCluster
  /** A temp dir for the test's own files (downloads). */
  work: string
  /** The lab host a keeper runs on. */
  hostOf(keeper: ServerProcess | string): LabHost
}

/**
 * Starts the lab and the cluster, or skips the test (and returns undefined) where that cannot be
 * done; `zones[i]` is keeper i's --zone.
 */
export async function startNetCluster(t: TestContext, options: Omit<ClusterOptions, 'placement' | 'tls'> & {zones?: string[]} = {}): Promise<NetCluster | undefined> {
  const reason = NetLab.unavailable()
  if (reason) {
    skipOrFail(t, reason)
    return undefined
  }

  const keepers = Array.from({length: options.keepers ?? 4}, (_, index) => `k${index + 1}`)
  const lab = await NetLab.create(['master', ...keepers, 'client'])
  let cluster: TestCluster | undefined
  let work: string | undefined
  // One hook, in this order: the servers stop before their namespaces go.
  t.after(async () => {
    await cluster?.stop()
    await lab.destroy()
    if (work) await rm(work, {recursive: true, force: true})
  })
  const {zones, ...clusterOptions} = options
  const placement = lab.placement('master', keepers, 'client')
  const zoned = zones ? {...placement, keeper: (index: number) => {
    const at = placement.keeper(index)
    return {...at, args: [...at.args, '--zone', zones[index] ?? 'default']}
  }} : placement
  cluster = await TestCluster.start({...clusterOptions, placement: zoned})
  work = await tempDir()
  const started = cluster
  const hostOf = (keeper: ServerProcess | string) => {
    const server = typeof keeper === 'string' ? started.keeperById(keeper) : keeper
    const host = lab.hostAt(server.url)
    if (!host) throw new Error(`keeper ${server.id} at ${server.url} is on no host of the lab`)
    return host
  }

  return {lab, cluster, work, hostOf}
}

/** Gets every file through the client host and asserts each is byte-exact. */
export async function assertAllReadBack(net: NetCluster, files: Record<string, string>): Promise<void> {
  for (const [name, sha256] of Object.entries(files)) {
    const out = join(net.work, `read-back-${name}`)
    const got = await net.cluster.dfs(['get', name, '-o', out])
    assert.equal(got.code, 0, `get ${name}: ${got.stderr}`)
    assert.equal(await sha256File(out), sha256, `${name} read back with other bytes`)
  }
}

/**
 * The replicas the master records for each file: the keeper ids, alive or not; and, per file, how
 * many keepers hold its blob on disk (a trimmed replica is gone from disk too).
 */
export async function replicasOf(cluster: TestCluster, names: string[]): Promise<Record<string, {alive: string[]; dead: string[]}>> {
  const result: Record<string, {alive: string[]; dead: string[]}> = {}
  for (const name of names) {
    const {replicas} = await cluster.stat(name)
    result[name] = {alive: replicas.filter((r) => r.alive).map((r) => r.keeper).sort(), dead: replicas.filter((r) => !r.alive).map((r) => r.keeper).sort()}
  }

  return result
}

/** The ids of the keepers whose disk holds the blob of `fileId`, whatever the master records. */
export async function holdersOnDisk(cluster: TestCluster, fileId: string): Promise<string[]> {
  const holders: string[] = []
  for (const keeper of cluster.keepers) {
    const exists = await access(cluster.blobPath(keeper.id, fileId)).then(() => true, () => false)
    if (exists) holders.push(keeper.id)
  }

  return holders.sort()
}

/** Stores every sample video with `put --wait all`; returns name → sha256. */
export async function storeSamples(cluster: TestCluster): Promise<Record<string, string>> {
  const files: Record<string, string> = {}
  for (const [name, {sha256}] of Object.entries(SAMPLES)) {
    const put = await cluster.dfs(['put', join(FIXTURES, name), '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)
    files[name] = sha256
  }

  return files
}

/** Whether each file has exactly 3 replicas, all alive, and the keepers holding its blob on disk are exactly those. */
export async function onExactlyThreeKeepers(cluster: TestCluster, names: string[]): Promise<boolean> {
  for (const name of names) {
    const {fileId, replicas} = await cluster.stat(name)
    if (replicas.length !== 3 || replicas.some((replica) => !replica.alive)) return false
    if ((await holdersOnDisk(cluster, fileId)).join() !== replicas.map((replica) => replica.keeper).sort().join()) return false
  }

  return true
}
