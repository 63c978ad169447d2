using System.Text;
using Net.Pkcs11Interop.HighLevelAPI;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Errors;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The clusters of one gateway and what each is now: enabled or not, the instance it serves (a private data
/// object in its primary token) and whether it holds keys. Connecting an instance and resetting a cluster change
/// that state. Callers hold the module's gate.
/// </summary>
/// <param name="sessions">The gateway's tokens.</param>
/// <param name="clusters">The clusters' definitions by cluster ID.</param>
internal sealed class ClusterDirectory(TokenSessions sessions, IReadOnlyDictionary<string, Pkcs11ClusterDefinition> clusters)
{
    public int Count => clusters.Count;

    /// <summary>The cluster's definition.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: the gateway has no such cluster.</exception>
    public Pkcs11ClusterDefinition Get(string clusterId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        return clusters.TryGetValue(clusterId, out var cluster) ? cluster : throw new BackupException(new Refusal(
            BackupErrorCode.NotFound, $"cluster '{clusterId}'",
            $"There is no HSM cluster '{clusterId}'.",
            "Add the cluster's definition to the gateway's options."));
    }

    /// <summary>The cluster as it is now, or <see langword="null"/> when the gateway has no such cluster.</summary>
    public HsmClusterInfo? Find(string clusterId) => clusters.TryGetValue(clusterId, out var cluster) ? Describe(cluster) : null;

    /// <summary>The clusters of a region, or all, in cluster ID order.</summary>
    public List<HsmClusterInfo> List(string? region) => clusters.Values
        .Where(c => region is null || string.Equals(c.Region, region, StringComparison.Ordinal))
        .OrderBy(c => c.ClusterId, StringComparer.Ordinal)
        .Select(Describe)
        .ToList();

    /// <summary>The cluster as it is now: its definition, its state, and whether its primary holds keys.</summary>
    public HsmClusterInfo Describe(Pkcs11ClusterDefinition cluster)
    {
        var primary = cluster.Hsms[0].Token;
        using var session = sessions.Open(primary);
        var (enabled, connected) = ReadState(session, primary);
        var holdsKeys = Guard(primary, "list keys", () => ListKeys(session).Count > 0);
        return new HsmClusterInfo
        {
            ClusterId = cluster.ClusterId,
            Region = cluster.Region,
            Mode = cluster.Mode,
            Hsms = cluster.Hsms.Select(h => new HsmInfo(h.HsmId, h.Zone)).ToList(),
            PrimaryHsmId = cluster.Hsms[0].HsmId,
            IsEnabled = enabled,
            IsInUse = connected is not null || holdsKeys,
            ConnectedInstanceId = connected,
            Backup = cluster.Backup,
            OwnerAccount = cluster.OwnerAccount,
        };
    }

    /// <summary>Enables the cluster for the instance; a cluster that serves another instance refuses.</summary>
    public HsmClusterInfo Connect(string clusterId, string instanceId)
    {
        var cluster = Get(clusterId);
        var primary = cluster.Hsms[0].Token;
        using var session = sessions.Open(primary);
        var (_, connected) = ReadState(session, primary);
        if (connected is not null && !string.Equals(connected, instanceId, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.ClusterInUse, $"cluster '{clusterId}'",
                $"The HSM cluster '{clusterId}' already serves the instance '{connected}'.",
                "Connect the instance to a cluster of its own."));
        }

        Guard(primary, "write cluster state", () => WriteData(session, ClusterStateLabel, Encoding.UTF8.GetBytes("enabled\n" + instanceId)));
        return Describe(cluster);
    }

    /// <summary>Destroys every KMS key and the cluster state in each HSM of the cluster.</summary>
    public HsmClusterInfo Reset(string clusterId)
    {
        var cluster = Get(clusterId);
        foreach (var hsm in cluster.Hsms)
        {
            using var session = sessions.Open(hsm.Token);
            Guard(hsm.Token, "reset", () =>
            {
                foreach (var (_, handle) in ListKeys(session))
                {
                    session.DestroyObject(handle);
                }

                if (FindData(session, ClusterStateLabel) is { } state)
                {
                    session.DestroyObject(state);
                }
            });
        }

        return Describe(cluster);
    }

    /// <summary>The ID of the cluster that serves the hardware instance.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no cluster of the gateway serves it.</exception>
    public string ClusterOf(string instanceId) =>
        clusters.Values.FirstOrDefault(c =>
        {
            var primary = c.Hsms[0].Token;
            using var session = sessions.Open(primary);
            return string.Equals(ReadState(session, primary).Instance, instanceId, StringComparison.Ordinal);
        })?.ClusterId ?? throw new BackupException(new Refusal(
            BackupErrorCode.NotFound, $"instance '{instanceId}'",
            $"The hardware instance '{instanceId}' is connected to no HSM cluster of this gateway.",
            "Connect the instance to its HSM cluster (Connect to HSM) first."));

    private static (bool Enabled, string? Instance) ReadState(ISession session, Pkcs11TokenAccess token) =>
        Guard(token, "read cluster state", () =>
        {
            if (FindData(session, ClusterStateLabel) is not { } handle)
            {
                return (false, (string?)null);
            }

            var lines = Encoding.UTF8.GetString(ReadValue(session, handle)).Split('\n');
            return (lines[0] == "enabled", lines.Length > 1 && lines[1].Length > 0 ? lines[1] : null);
        });
}
