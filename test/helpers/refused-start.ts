import {spawn} from 'node:child_process'
import {once} from 'node:events'

import {BIN, type RunResult} from './cluster.js'

/**
 * Runs `dfs <args>` (a master or keeper) that a test expects to refuse to start. Should it start
 * serving after all (or still runs after a minute, e.g. a keeper waiting for a master), it is
 * killed and `started` is true: the test fails instead of hanging.
 */
export async function runRefusedStart(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult & {started: boolean}> {
  const child = spawn(process.execPath, [BIN, ...args], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  let started = false
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
    if (!started && /listening on /.test(stdout)) {
      started = true
      child.kill('SIGKILL')
    }
  })
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  // A hang guard only: a refusal takes well under a second.
  const guard = setTimeout(() => {
    started = true
    child.kill('SIGKILL')
  }, 60_000)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(guard)
  return {code: started ? 0 : code, stdout, stderr, started}
}
