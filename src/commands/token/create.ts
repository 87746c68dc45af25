import {Flags} from '@oclif/core'

import {DfsCommand, durationFlag, formatDuration, jsonFlag} from '../../lib/base-command.js'
import {DEFAULTS} from '../../lib/config.js'

export default class TokenCreateCommand extends DfsCommand {
  static override summary = 'Mint a client token from the cluster key, offline: no master needed.'
  static override description = `Prints the token on stdout (and its id, scope and expiry on stderr). Scopes nest: read (ls, stat, get, status, fsck, url) ⊂ write (also put) ⊂ admin (also rm and token revoke). Client commands send it from --token or DFS_TOKEN. The token is an HS256 JWT signed with a sub-key of the cluster key; keep it secret, and revoke it by id with dfs token revoke.`

  static override examples = [
    '<%= config.bin %> token create --scope read --secret-file /etc/dfs/secret',
    '<%= config.bin %> token create --scope write --ttl 7d --secret-file /etc/dfs/secret > ~/.dfs-token',
    '<%= config.bin %> token create --scope admin --json',
  ]

  static override flags = {
    scope: Flags.string({description: 'what the token allows', options: ['read', 'write', 'admin'], required: true}),
    ttl: durationFlag({description: 'how long the token is valid', default: DEFAULTS.tokenTtlMs, defaultHelp: async () => formatDuration(DEFAULTS.tokenTtlMs)}),
    'secret-file': Flags.string({
      description: "the cluster's key file",
      env: 'DFS_SECRET_FILE',
      helpValue: 'FILE',
      required: true,
    }),
    json: jsonFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(TokenCreateCommand)
    const {ClusterKey} = await import('../../lib/cluster-key.js')
    const {mintClientToken} = await import('../../lib/client-tokens.js')
    const key = await ClusterKey.load(flags['secret-file'])
    const {token, claims} = await mintClientToken(key, {scope: flags.scope as 'read' | 'write' | 'admin', ttlMs: flags.ttl})
    if (flags.json) return this.printJson({token, ...claims})
    this.logToStderr(`token ${claims.id}: scope ${claims.scope}, expires ${claims.expiresAt}`)
    this.log(token)
  }
}
