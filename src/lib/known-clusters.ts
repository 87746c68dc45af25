import {mkdir, readFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {dirname, join, resolve} from 'node:path'

// `dfs cluster up` records, per master URL, where the admin token of the cluster it runs lies, so
// that a client command given no --token (nor DFS_TOKEN) finds it from the master URL alone. The
// file names token files, not tokens: cluster up writes a fresh token at every start, and the entry
// stays right. Only this user reads it (mode 0600, in a 0700 directory).

interface KnownClusters {
  clusters: Record<string, {tokenFile: string}>
}

/** `$XDG_CONFIG_HOME/dfs/clusters.json`, by default `~/.config/dfs/clusters.json`. */
export function knownClustersFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(homedir(), '.config')
  return join(base, 'dfs', 'clusters.json')
}

/** Records that `tokenFile` holds a token for the master at `masterUrl` (replacing an older entry for that URL). */
export async function rememberCluster(masterUrl: string, tokenFile: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const file = knownClustersFile(env)
  await mkdir(dirname(file), {recursive: true, mode: 0o700})
  const known = await readKnownClusters(file)
  known.clusters[masterUrl] = {tokenFile: resolve(tokenFile)}
  // durable-file.ts is loaded here: every client command reads this file, only cluster up writes it.
  const {writePrivateFile} = await import('./durable-file.js')
  // Temp file and rename: a reader never sees half a file. Two clusters started at the same
  // instant may lose one entry; its token is still in its DIR/token.
  await writePrivateFile(file, JSON.stringify(known, null, 2) + '\n', {replace: true})
}

/** The token recorded for the master at `masterUrl`, if any (and if its file is still there). */
export async function knownToken(masterUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const entry = (await readKnownClusters(knownClustersFile(env))).clusters[masterUrl]
  if (!entry) return undefined
  try {
    const token = (await readFile(entry.tokenFile, 'utf8')).trim()
    return token === '' ? undefined : token
  } catch {
    // The cluster's directory was removed: the entry is stale, not an error of this command.
    return undefined
  }
}

async function readKnownClusters(file: string): Promise<KnownClusters> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'))
  } catch {
    // Absent or unreadable: as if no cluster was recorded (cluster up writes it anew).
    return {clusters: {}}
  }

  const clusters = (parsed as Partial<KnownClusters> | null)?.clusters
  const known: KnownClusters = {clusters: {}}
  if (clusters && typeof clusters === 'object') {
    for (const [url, entry] of Object.entries(clusters)) if (typeof entry?.tokenFile === 'string') known.clusters[url] = {tokenFile: entry.tokenFile}
  }

  return known
}
