using System.CommandLine;
using KmsBackup.Cli.Output;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

// kmsbackup keys list/add/remove: the repository's key providers (issue 17; docs/repository-format.md, "Key providers").
internal static partial class CommandTree
{
    private static Command KeysCommand(CliHost host, GlobalOptions globals)
    {
        var list = new Command("list", "List the repository's key providers: kind, key ID and when each was added. Never key material.");
        Handle(list, host, globals, async (inv, ct) =>
        {
            var providers = await (await inv.ClientAsync(ct).ConfigureAwait(false)).ListKeyProvidersAsync(ct).ConfigureAwait(false);
            inv.Write(providers.Select(JsonKeyProvider.From).ToList(), c => Render.KeyProviders(c, providers, inv.Wide));
            return ExitCodes.Ok;
        });

        // Not --key-file: that global option names the key file the folder is opened with.
        var keyFile = new Option<string?>("--add-key-file") { Description = "Add a key file (32 random bytes, mode 0600), created at this path when it does not exist. Keep it apart from the store." };
        var passphraseStdin = new Option<bool>("--passphrase-stdin") { Description = "Add a passphrase, read from the first line of standard input (at least 12 characters), stretched with Argon2id." };
        var shares = OptionalWholeNumberOption("--recovery-shares", "Add a new recovery key split into this many shares (N, up to 255), printed once for offline escrow; needs --threshold.");
        var threshold = OptionalWholeNumberOption("--threshold", "How many recovery shares open the repository (M, at most N).");
        var add = new Command("add", "Add a key provider: the repository then opens with it alone. Re-encrypts nothing. Give exactly one of --add-key-file, --passphrase-stdin, --recovery-shares.")
        {
            keyFile, passphraseStdin, shares, threshold,
        };
        Handle(add, host, globals, async (inv, ct) =>
        {
            var path = inv.Value(keyFile);
            var fromStdin = inv.Value(passphraseStdin);
            var shareCount = inv.Value(shares);
            var needed = inv.Value(threshold);
            if ((path is null ? 0 : 1) + (fromStdin ? 1 : 0) + (shareCount is null ? 0 : 1) != 1)
            {
                throw new UsageException("Give exactly one of --add-key-file, --passphrase-stdin, --recovery-shares.");
            }

            if (shareCount is not null && needed is null)
            {
                throw new UsageException("--recovery-shares needs --threshold: how many of the shares open the repository.");
            }

            if (shareCount is null && needed is not null)
            {
                throw new UsageException("--threshold goes with --recovery-shares.");
            }

            if (shareCount is not null && (shareCount is < 1 or > RecoveryKeyRepositoryKeyProvider.MaximumShareCount || needed is < 1 || needed > shareCount))
            {
                throw new UsageException($"--threshold must be from 1 to --recovery-shares, and --recovery-shares at most {RecoveryKeyRepositoryKeyProvider.MaximumShareCount}.");
            }

            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            if (path is not null)
            {
                using var provider = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(inv.Host.FileSystem, path, ct).ConfigureAwait(false);
                var added = await client.AddKeyProviderAsync(provider, ct).ConfigureAwait(false);
                inv.Write(new JsonKeyProviderAdded(added.Kind, added.KeyId, Names.Instant(added.AddedAt), null, null), c => c.MarkupLine(
                    $"Added the key file {Markup.Escape(path)} as key provider {Markup.Escape(added.KeyId)}. Keep it apart from the store."));
            }
            else if (fromStdin)
            {
                var line = await inv.Host.Input.ReadLineAsync(ct).ConfigureAwait(false);
                if (string.IsNullOrEmpty(line) || line.Length < PassphraseRepositoryKeyProvider.MinimumPassphraseLength)
                {
                    throw new UsageException($"--passphrase-stdin reads the passphrase from the first line of standard input: at least {PassphraseRepositoryKeyProvider.MinimumPassphraseLength} characters.");
                }

                using var provider = new PassphraseRepositoryKeyProvider(line);
                var added = await client.AddKeyProviderAsync(provider, ct).ConfigureAwait(false);
                inv.Write(new JsonKeyProviderAdded(added.Kind, added.KeyId, Names.Instant(added.AddedAt), null, null), c => c.MarkupLine(
                    $"Added a passphrase as key provider {Markup.Escape(added.KeyId)}. A lost passphrase cannot be recovered: keep another provider."));
            }
            else
            {
                using var split = RecoveryKeyRepositoryKeyProvider.Split(needed!.Value, shareCount!.Value);
                var added = await client.AddKeyProviderAsync(split.Provider, ct).ConfigureAwait(false);
                inv.Write(new JsonKeyProviderAdded(added.Kind, added.KeyId, Names.Instant(added.AddedAt), split.Threshold, split.Shares), c =>
                {
                    c.MarkupLine($"Added recovery key {Markup.Escape(added.KeyId)}: any {split.Threshold} of these {split.Shares.Count} shares open the repository.");
                    c.MarkupLine("They are printed this once and stored nowhere: give each to its keeper, offline.");
                    foreach (var share in split.Shares)
                    {
                        c.WriteLine(share);
                    }
                });
            }

            return ExitCodes.Ok;
        });

        var keyId = new Argument<string>("key-id") { Description = "The provider's key ID, as 'keys list' shows it." };
        var remove = new Command("remove", "Remove a key provider: the repository no longer opens with it. The last provider is never removed.") { keyId };
        Handle(remove, host, globals, async (inv, ct) =>
        {
            var id = inv.Value(keyId);
            await (await inv.ClientAsync(ct).ConfigureAwait(false)).RemoveKeyProviderAsync(id, ct).ConfigureAwait(false);
            inv.Write(new JsonKeyProviderRemoved(id), c => c.MarkupLine(
                $"Removed key provider {Markup.Escape(id)}. Removing is not revoking: a copy of the store made before still opens with it."));
            return ExitCodes.Ok;
        });

        return new Command("keys", "The repository's key providers: a key file, a PKCS#11 token, a passphrase, a split recovery key. Any one opens it.") { list, add, remove };
    }
}
