// Scenario 6: CLI start-up. `dfs --version` and `dfs ls` against an empty cluster, compared with
// `node -e 0`, the floor any Node CLI pays. The three are interleaved so that noise hits each alike.

import type {Context} from '../context.js'
import {DFS_BIN, lastLines, runCommand, startNode} from '../processes.js'

export interface StartupSamples {
  nodeMs: number[]
  versionMs: number[]
  lsMs: number[]
}

export async function runStartup(context: Context, samples: number): Promise<StartupSamples> {
  const cluster = await context.cluster()
  const result: StartupSamples = {nodeMs: [], versionMs: [], lsMs: []}
  try {
    const node = () => runCommand(process.execPath, ['-e', '0'])
    const dfs = async (args: string[]) => {
      const run = await startNode(DFS_BIN, args).done
      if (run.code !== 0) throw new Error(`dfs ${args.join(' ')} failed (exit ${run.code}): ${lastLines(run.stderr)}`)
      return run
    }

    const ls = ['ls', '--master', cluster.masterUrl]
    // Warm the page cache first; the first start of anything reads its files from disk.
    await node()
    await dfs(['--version'])
    await dfs(ls)
    for (let index = 0; index < samples; index++) {
      result.nodeMs.push((await node()).ms)
      result.versionMs.push((await dfs(['--version'])).ms)
      const listed = await dfs(ls)
      if (!/no files/i.test(listed.stdout)) throw new Error(`dfs ls on an empty cluster printed: ${listed.stdout}`)
      result.lsMs.push(listed.ms)
    }
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }

  return result
}
