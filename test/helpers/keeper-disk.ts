// What is really on keepers' disks, to hold against what the master records.

import {readdir} from 'node:fs/promises'
import {join} from 'node:path'

import type {TestCluster} from './cluster.js'

export interface KeeperOnDisk {
  id: string
  dataDir: string
}

/** Ids of the blobs in a keeper's blobs/ (descriptions not counted). */
export async function blobIds(dataDir: string): Promise<string[]> {
  const entries = await readdir(join(dataDir, 'blobs')).catch(() => [])
  return entries.filter((entry) => !entry.endsWith('.json')).sort()
}

/** Entries of a keeper's tmp/: uploads and copies in progress, or their leftovers. */
export async function tmpEntries(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'tmp')).catch(() => [])
}

/** Every blob on these keepers' disks, as sorted `keeper/fileId` strings. */
export async function replicasOnDisk(keepers: KeeperOnDisk[]): Promise<string[]> {
  const all: string[] = []
  for (const keeper of keepers) for (const id of await blobIds(keeper.dataDir)) all.push(`${keeper.id}/${id}`)
  return all.sort()
}

/**
 * Every replica the master records (alive or not), as sorted `keeper/fileId` strings. Asked over
 * HTTP (GET /files, as `dfs ls` asks), not through the CLI: tests poll it in waitFor, and a CLI
 * start per poll is most of the CPU such a wait costs on a loaded machine.
 */
export async function replicasInTable(cluster: TestCluster): Promise<string[]> {
  const all: string[] = []
  const listed = await cluster.masterJson<{files: Array<{name: string}>}>('/files')
  if (listed.status !== 200) throw new Error(`GET /files: ${listed.status} ${JSON.stringify(listed.body)}`)
  for (const {name} of listed.body.files) {
    const info = await cluster.stat(name)
    for (const replica of info.replicas) all.push(`${replica.keeper}/${info.fileId}`)
  }

  return all.sort()
}

/** The cluster's own keepers with their data dirs. */
export function clusterKeepers(cluster: TestCluster): KeeperOnDisk[] {
  return cluster.keepers.map((keeper) => ({id: keeper.id, dataDir: cluster.dataDirOf(keeper)}))
}
