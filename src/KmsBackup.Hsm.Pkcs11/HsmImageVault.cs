using System.Security.Cryptography;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Errors;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The backup images in the backup vault: each a private data object holding every KMS key of a cluster's primary
/// HSM wrapped under the backup key (<see cref="HsmImageFormat"/>). Taking one wraps inside the primary; restoring
/// one unwraps inside each HSM of the target cluster. Callers hold the module's gate.
/// </summary>
/// <param name="sessions">The gateway's tokens.</param>
/// <param name="clusters">The gateway's clusters.</param>
/// <param name="domain">The backup domain, under whose key the images hold the keys.</param>
/// <param name="time">The clock that dates the images.</param>
internal sealed class HsmImageVault(TokenSessions sessions, ClusterDirectory clusters, BackupDomain domain, TimeProvider time)
{
    /// <summary>Wraps every KMS key of the cluster's primary HSM under the backup key and stores the image in the vault.</summary>
    public HsmBackupImage Take(string clusterId, HsmBackupImageType type)
    {
        var cluster = clusters.Get(clusterId);
        var primary = cluster.Hsms[0].Token;
        domain.Join([primary]);
        using var session = sessions.Open(primary);
        var backupKey = BackupDomain.KeyIn(session, primary);
        var entries = new List<(string KeyId, byte[] Wrapped)>();
        try
        {
            foreach (var (keyId, handle) in ListKeys(session))
            {
                entries.Add((keyId, Guard(primary, "wrap key", () => session.WrapKey(AesKeyWrap(session), backupKey, handle))));
            }

            var image = new HsmBackupImage($"img-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}", clusterId, type, time.GetUtcNow()) { KeyCount = entries.Count };
            var blob = HsmImageFormat.Write(image, entries);
            try
            {
                using var vault = sessions.OpenVault();
                Guard(sessions.Vault, "store image", () => WriteData(vault, ImageLabelPrefix + image.ImageId, blob));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(blob);
            }

            return image;
        }
        finally
        {
            foreach (var (_, wrapped) in entries)
            {
                CryptographicOperations.ZeroMemory(wrapped);
            }
        }
    }

    /// <summary>The images taken of the cluster, oldest first; the cluster need not be defined any more.</summary>
    public List<HsmBackupImage> List(string clusterId)
    {
        // Images outlive their cluster's definition (the cluster may be gone): list them by source ID.
        using var vault = sessions.OpenVault();
        return Guard(sessions.Vault, "list images", () => ListData(vault, ImageLabelPrefix)
            .Select(d => HsmImageFormat.ReadHeader(ReadValue(vault, d.Handle)))
            .Where(i => string.Equals(i.ClusterId, clusterId, StringComparison.Ordinal))
            .OrderBy(i => i.TakenAt)
            .ThenBy(i => i.ImageId, StringComparer.Ordinal)
            .ToList());
    }

    /// <summary>Unwraps every key of the image inside each HSM of the target cluster, which must not be in use.</summary>
    public HsmClusterInfo Restore(string imageId, string targetClusterId)
    {
        var target = clusters.Get(targetClusterId);
        var info = clusters.Describe(target);
        if (info.IsInUse)
        {
            var by = info.ConnectedInstanceId is null ? "holds keys" : $"serves the instance '{info.ConnectedInstanceId}'";
            throw new BackupException(new Refusal(
                BackupErrorCode.ClusterInUse, $"cluster '{info.ClusterId}'",
                $"The HSM cluster '{info.ClusterId}' is in use (it {by}); restoring an image into it would overwrite its keys.",
                "An image is restored only into an empty cluster: disable and reset it first (ResetClusterAsync), or restore the image into a new cluster."));
        }

        byte[] blob;
        using (var vault = sessions.OpenVault())
        {
            var handle = FindData(vault, ImageLabelPrefix + imageId) ?? throw new BackupException(new Refusal(
                BackupErrorCode.HsmImageNotFound, $"image '{imageId}'",
                $"There is no HSM backup image '{imageId}' in the backup vault.",
                "List the images of the original cluster and choose the most recent Auto Create one."));
            blob = ReadValue(vault, handle);
        }

        var (_, entries) = HsmImageFormat.Read(blob);
        CryptographicOperations.ZeroMemory(blob);
        try
        {
            domain.Join(target.Hsms.Select(h => h.Token));
            foreach (var hsm in target.Hsms)
            {
                using var session = sessions.Open(hsm.Token);
                var backupKey = BackupDomain.KeyIn(session, hsm.Token);
                foreach (var (keyId, wrapped) in entries)
                {
                    Guard(hsm.Token, "unwrap key", () => session.UnwrapKey(AesKeyWrap(session), backupKey, wrapped, KeyTemplate(session, keyId, withLength: false)));
                }
            }
        }
        finally
        {
            foreach (var (_, wrapped) in entries)
            {
                CryptographicOperations.ZeroMemory(wrapped);
            }
        }

        return clusters.Describe(target);
    }
}
