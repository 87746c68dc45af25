// Scenario 6: CLI start-up. `dfs --version`, `dfs ls` against an empty cluster and `dfs stat` of a
// stored file, compared with `node -e 0`, the floor any Node CLI pays; each pair is interleaved so
// that noise hits both alike. Then 64 KiB files stored one `dfs put` process at a time, the way a
// script that loops over files uses dfs: what each command costs before any byte moves, end to end.

import type {Context} from '../context.js'
import {generateFiles} from '../data.js'
import {DFS_BIN, lastLines, runCommand, startNode} from '../processes.js'

export interface StartupSamples {
  nodeMs: number[]
  versionMs: number[]
  lsMs: number[]
  statMs: number[]
  /** Files per second of the one-at-a-time puts (one figure per run). */
  putRate: number
}

/** The size of each file of the one-at-a-time puts. */
export const STARTUP_PUT_SIZE = 64 * 1024

let runsSoFar = 0

export async function runStartup(context: Context, samples: number): Promise<StartupSamples> {
  const cluster = await context.cluster()
  const result: StartupSamples = {nodeMs: [], versionMs: [], lsMs: [], statMs: [], putRate: 0}
  try {
    const node = () => runCommand(process.execPath, ['-e', '0'])
    const dfs = async (args: string[]) => {
      const run = await startNode(DFS_BIN, args).done
      if (run.code !== 0) throw new Error(`dfs ${args.join(' ')} failed (exit ${run.code}): ${lastLines(run.stderr)}`)
      return run
    }

    const master = ['--master', cluster.masterUrl]
    // Warm the page cache first; the first start of anything reads its files from disk.
    await node()
    await dfs(['--version'])
    await dfs(['ls', ...master])
    for (let index = 0; index < samples; index++) {
      result.nodeMs.push((await node()).ms)
      result.versionMs.push((await dfs(['--version'])).ms)
      const listed = await dfs(['ls', ...master])
      if (!/no files/i.test(listed.stdout)) throw new Error(`dfs ls on an empty cluster printed: ${listed.stdout}`)
      result.lsMs.push(listed.ms)
    }

    // Twice as many puts as samples: one process each, one after the other, as a shell loop runs them.
    const files = await generateFiles(await context.dir(`startup-put-${++runsSoFar}`), 'one', samples * 2, STARTUP_PUT_SIZE)
    let putMs = 0
    for (const file of files) {
      const stored = await dfs(['put', file.path, ...master, '--json'])
      const [entry] = JSON.parse(stored.stdout) as Array<{name?: string; sha256?: string}>
      if (entry?.sha256 !== file.sha256) throw new Error(`dfs put ${file.name} reported ${stored.stdout.trim()}, not sha256 ${file.sha256}`)
      putMs += stored.ms
    }

    result.putRate = files.length / (putMs / 1000)

    const name = files[0]!.name
    for (let index = 0; index < samples; index++) {
      result.nodeMs.push((await node()).ms)
      const shown = await dfs(['stat', name, ...master])
      if (!shown.stdout.includes(files[0]!.sha256)) throw new Error(`dfs stat ${name} printed: ${shown.stdout}`)
      result.statMs.push(shown.ms)
    }
  } catch (error) {
    throw cluster.explain(error)
  } finally {
    await cluster.stop()
  }

  return result
}
