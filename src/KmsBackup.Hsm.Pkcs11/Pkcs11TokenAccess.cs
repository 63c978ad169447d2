namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// How to reach one PKCS#11 token (an HSM): its label, the user PIN and, for an HSM of a cluster on a token that
/// lets only its security officer mark a key trusted, the SO PIN. No PIN is ever shown: <see cref="ToString"/> names
/// the token only.
/// </summary>
public sealed class Pkcs11TokenAccess
{
    /// <summary>Names a token and the user PIN to log in to it with.</summary>
    /// <param name="tokenLabel">The token's label (as set when the token was initialised), 1 to 32 characters.</param>
    /// <param name="userPin">The token's user PIN.</param>
    /// <exception cref="ArgumentException">The label is empty or longer than 32 characters, or the PIN is empty.</exception>
    public Pkcs11TokenAccess(string tokenLabel, string userPin)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tokenLabel);
        ArgumentException.ThrowIfNullOrEmpty(userPin);
        if (tokenLabel.Length > 32)
        {
            throw new ArgumentException("A PKCS#11 token label is at most 32 characters.", nameof(tokenLabel));
        }

        TokenLabel = tokenLabel;
        UserPin = userPin;
    }

    /// <summary>Names a token, its user PIN and its security officer (SO) PIN.</summary>
    /// <param name="tokenLabel">The token's label (as set when the token was initialised), 1 to 32 characters.</param>
    /// <param name="userPin">The token's user PIN.</param>
    /// <param name="securityOfficerPin">
    /// The token's SO PIN. An HSM of a cluster keeps its copy of the backup key as a trusted key (<c>CKA_TRUSTED</c>), the
    /// only key its KMS keys may be wrapped with (<c>CKA_WRAP_WITH_TRUSTED</c>); many tokens, SoftHSM2 among them, let only
    /// the SO mark a key trusted. The <see cref="Pkcs11HsmClusterGateway"/> logs in as the SO once per token, when the
    /// token joins the backup domain, to create that key; a token that lets the user do it needs no SO PIN.
    /// </param>
    /// <exception cref="ArgumentException">The label is empty or longer than 32 characters, or a PIN is empty.</exception>
    public Pkcs11TokenAccess(string tokenLabel, string userPin, string securityOfficerPin)
        : this(tokenLabel, userPin)
    {
        ArgumentException.ThrowIfNullOrEmpty(securityOfficerPin);
        SecurityOfficerPin = securityOfficerPin;
    }

    /// <summary>The token's label.</summary>
    public string TokenLabel { get; }

    internal string UserPin { get; }

    internal string? SecurityOfficerPin { get; }

    /// <summary>The token's label, never the PIN.</summary>
    public override string ToString() => $"token '{TokenLabel}'";
}

/// <summary>One HSM of a cluster: its ID, its availability zone and the token that is it.</summary>
/// <param name="HsmId">The HSM's ID.</param>
/// <param name="Zone">Its availability zone.</param>
/// <param name="Token">The token.</param>
public sealed record Pkcs11HsmDefinition(string HsmId, string Zone, Pkcs11TokenAccess Token);

/// <summary>A cluster of tokens whose keys the gateway keeps in step. The first HSM is the primary.</summary>
/// <param name="ClusterId">The cluster ID.</param>
/// <param name="Region">The region.</param>
/// <param name="Hsms">The HSMs; the first is the primary.</param>
public sealed record Pkcs11ClusterDefinition(string ClusterId, string Region, IReadOnlyList<Pkcs11HsmDefinition> Hsms)
{
    /// <summary>Cluster (the default) or standalone.</summary>
    public HsmClusterMode Mode { get; init; } = HsmClusterMode.Cluster;

    /// <summary>The cluster's HSM backup; default disabled.</summary>
    public HsmBackupPolicy Backup { get; init; } = HsmBackupPolicy.Disabled;

    /// <summary>
    /// The account that owns the cluster (<see cref="HsmClusterInfo.OwnerAccount"/>); <see langword="null"/>, the default,
    /// for a cluster assigned to no account, which no account can restore an image into. Set it to the account that
    /// purchased the HSM instance; a deployment that serves one account sets that account on every cluster.
    /// </summary>
    public string? OwnerAccount { get; init; }
}

/// <summary>Options of a <see cref="Pkcs11HsmClusterGateway"/>.</summary>
public sealed class Pkcs11HsmClusterGatewayOptions
{
    /// <summary>The default PKCS#11 library: SoftHSM2 as Debian installs it.</summary>
    public const string DefaultLibraryPath = "/usr/lib/softhsm/libsofthsm2.so";

    /// <summary>The PKCS#11 library (module) to load. Default <see cref="DefaultLibraryPath"/>.</summary>
    public string LibraryPath { get; set; } = DefaultLibraryPath;

    /// <summary>
    /// The backup vault: the token that holds the backup key (generated there when absent) and the
    /// backup images. Every token of every cluster joins its backup domain: it receives the backup key,
    /// wrapped under a one-time RSA key made inside it.
    /// </summary>
    public Pkcs11TokenAccess? BackupVault { get; set; }

    /// <summary>The clusters the gateway serves.</summary>
    public IList<Pkcs11ClusterDefinition> Clusters { get; } = [];

    /// <summary>Where image times come from. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
