import {Args} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../../lib/base-command.js'

export default class TokenRevokeCommand extends DfsCommand {
  static override summary = "Revoke a client token by its id: it goes on the master's list of refused tokens."
  static override description = `The id is what dfs token create printed (also the token's "jti" claim). The master keeps revoked ids in its table, so a revocation survives restarts; a token that has expired needs none. The master refuses a revoked token from then on. Revoking takes an admin token.`
  static override examples = ['<%= config.bin %> token revoke Xb2kQ9mPz1LwT0aA']
  static override args = {id: Args.string({description: 'id of the token', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(TokenRevokeCommand)
    const {revokeToken} = await import('../../roles/client/admin.js')
    const result = await revokeToken(await this.master(flags), args.id)
    if (flags.json) return this.printJson(result)
    this.log(result.newly ? `revoked token ${result.id}` : `token ${result.id} was already revoked`)
  }
}
