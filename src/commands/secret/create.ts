import {Args, Flags} from '@oclif/core'

import {DfsCommand} from '../../lib/base-command.js'

export default class SecretCreateCommand extends DfsCommand {
  static override summary = "Create a cluster key file: the secret the master and every keeper share."
  static override description = `Writes 32 random bytes, as one line of base64url, to FILE with mode 0600 (temp file, fsync, rename). Give the same file to the master and to every keeper with --secret-file, and to dfs token create. The key itself is never printed. An existing FILE is kept unless --force: a new key invalidates every token and grant made with the old one.`

  static override examples = ['<%= config.bin %> secret create /etc/dfs/secret', '<%= config.bin %> secret create ./secret --force']
  static override args = {file: Args.string({description: 'where to write the key', required: true})}
  static override flags = {
    force: Flags.boolean({description: 'replace an existing file', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(SecretCreateCommand)
    const {createKeyFile} = await import('../../lib/cluster-key.js')
    await createKeyFile(args.file, {force: flags.force})
    this.log(`wrote a new cluster key to ${args.file} (mode 0600); give it to the master and every keeper with --secret-file`)
  }
}
