// Random files stored through the real CLI and read back through it: the common first and last
// steps of the tests that move replicas around (zones, drains).

import assert from 'node:assert/strict'
import {join} from 'node:path'

import {randomFile, sha256File, type TestCluster} from './cluster.js'

/**
 * Stores `count` random files named `PREFIX-i.bin` (`baseSize` bytes, `step` more for each next
 * one) from `work`; with `replicas`, waits until each has that many. Returns name → sha256.
 */
export async function storeRandomFiles(
  cluster: TestCluster,
  work: string,
  prefix: string,
  count: number,
  options: {baseSize: number; step: number; replicas?: number},
): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  for (let index = 0; index < count; index++) {
    const name = `${prefix}-${index}.bin`
    const path = join(work, `${cluster.masterPort}-${name}`)
    files.set(name, await randomFile(path, options.baseSize + index * options.step))
    const put = await cluster.dfs(['put', path, '--name', name])
    assert.equal(put.code, 0, put.stderr)
  }

  if (options.replicas !== undefined) for (const name of files.keys()) await cluster.waitForReplicas(name, options.replicas)
  return files
}

/** Every file (name → sha256) reads back byte for byte with `dfs get`. */
export async function assertReadBack(cluster: TestCluster, work: string, files: Map<string, string>): Promise<void> {
  for (const [name, sha256] of files) {
    const out = join(work, `${cluster.masterPort}-back-${name}`)
    const get = await cluster.dfs(['get', name, '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), sha256, `${name} reads back byte for byte`)
  }
}
