using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>The objects the SDK keeps in a token, and the templates they are made with.</summary>
internal static class Pkcs11Objects
{
    public const string Application = "kmsbackup";
    public const string BackupKeyLabel = "kmsbackup:backup-key";
    public const string KeyLabelPrefix = "kmsbackup:key:";
    public const string ClusterStateLabel = "kmsbackup:cluster-state";
    public const string ImageLabelPrefix = "kmsbackup:image:";

    public static IObjectAttribute A(ISession s, CKA type, bool value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, string value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, byte[] value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, CKO value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, CKK value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, ulong value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute A(ISession s, CKA type, List<IObjectAttribute> value) => s.Factories.ObjectAttributeFactory.Create(type, value);

    /// <summary>A key's CKA_ID: the UTF-8 bytes of its key ID.</summary>
    public static byte[] IdOf(string keyId) => Encoding.UTF8.GetBytes(keyId);

    /// <summary>
    /// The template of a KMS key's AES-256 material: sensitive (never readable), extractable only by wrapping (backup
    /// images, keeping the cluster in step), and only under a trusted key (<c>CKA_WRAP_WITH_TRUSTED</c>): the backup key.
    /// Without it, anyone with a user PIN could wrap the key under a key of their own and read it.
    /// </summary>
    public static List<IObjectAttribute> KeyTemplate(ISession s, string keyId, bool withLength) =>
    [
        A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        A(s, CKA.CKA_KEY_TYPE, CKK.CKK_AES),
        .. withLength ? [A(s, CKA.CKA_VALUE_LEN, 32UL)] : Array.Empty<IObjectAttribute>(),
        A(s, CKA.CKA_TOKEN, true),
        A(s, CKA.CKA_PRIVATE, true),
        A(s, CKA.CKA_SENSITIVE, true),
        A(s, CKA.CKA_EXTRACTABLE, true),
        A(s, CKA.CKA_WRAP_WITH_TRUSTED, true),
        A(s, CKA.CKA_ENCRYPT, true),
        A(s, CKA.CKA_DECRYPT, true),
        A(s, CKA.CKA_ID, IdOf(keyId)),
        A(s, CKA.CKA_LABEL, KeyLabelPrefix + keyId),
    ];

    /// <summary>
    /// The backup key as the backup vault keeps it: AES-256, generated in the vault, extractable only so that it can
    /// join new tokens to the backup domain, wrapped. The vault wraps no KMS key with it, so it need not be trusted.
    /// </summary>
    public static List<IObjectAttribute> BackupKeyTemplate(ISession s, bool withLength) =>
    [
        A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        A(s, CKA.CKA_KEY_TYPE, CKK.CKK_AES),
        .. withLength ? [A(s, CKA.CKA_VALUE_LEN, 32UL)] : Array.Empty<IObjectAttribute>(),
        A(s, CKA.CKA_TOKEN, true),
        A(s, CKA.CKA_PRIVATE, true),
        A(s, CKA.CKA_SENSITIVE, true),
        A(s, CKA.CKA_EXTRACTABLE, true),
        A(s, CKA.CKA_WRAP, true),
        A(s, CKA.CKA_UNWRAP, true),
        A(s, CKA.CKA_ENCRYPT, false),
        A(s, CKA.CKA_DECRYPT, false),
        A(s, CKA.CKA_LABEL, BackupKeyLabel),
    ];

    /// <summary>
    /// The backup key as an HSM of a cluster keeps it, unwrapped there when the HSM joins the backup domain: trusted
    /// (<c>CKA_TRUSTED</c>), so that it alone may wrap KMS keys; not extractable; unchangeable and not copyable, so that
    /// the trust and the unwrap template stay as made; and whatever it unwraps must be sensitive and wrappable only with
    /// a trusted key again (<c>CKA_UNWRAP_TEMPLATE</c>), so that it cannot unwrap a KMS key into a readable one.
    /// </summary>
    /// <param name="s">A session of the security officer when the token lets only the SO set <c>CKA_TRUSTED</c> (SoftHSM2 does), else of the user.</param>
    /// <param name="isPrivate">Whether the key is a private object: a security officer can create only public ones (it can still be used only with the user PIN's objects).</param>
    public static List<IObjectAttribute> MemberBackupKeyTemplate(ISession s, bool isPrivate) =>
    [
        A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        A(s, CKA.CKA_KEY_TYPE, CKK.CKK_AES),
        A(s, CKA.CKA_TOKEN, true),
        A(s, CKA.CKA_PRIVATE, isPrivate),
        A(s, CKA.CKA_SENSITIVE, true),
        A(s, CKA.CKA_EXTRACTABLE, false),
        A(s, CKA.CKA_TRUSTED, true),
        A(s, CKA.CKA_COPYABLE, false),
        A(s, CKA.CKA_WRAP, true),
        A(s, CKA.CKA_UNWRAP, true),
        A(s, CKA.CKA_ENCRYPT, false),
        A(s, CKA.CKA_DECRYPT, false),
        A(s, CKA.CKA_UNWRAP_TEMPLATE, [A(s, CKA.CKA_SENSITIVE, true), A(s, CKA.CKA_WRAP_WITH_TRUSTED, true)]),
        A(s, CKA.CKA_LABEL, BackupKeyLabel),

        // Last: SoftHSM2 applies an unwrap template in order and refuses every attribute after CKA_MODIFIABLE = false.
        A(s, CKA.CKA_MODIFIABLE, false),
    ];

    public static IObjectHandle? FindSecretKey(ISession s, string label) =>
        s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(s, CKA.CKA_LABEL, label)]).FirstOrDefault();

    /// <summary>The vault's copy of the backup key: the extractable one (a token that is both vault and HSM holds both copies).</summary>
    public static IObjectHandle? FindVaultBackupKey(ISession s) =>
        s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(s, CKA.CKA_LABEL, BackupKeyLabel), A(s, CKA.CKA_EXTRACTABLE, true)]).FirstOrDefault();

    /// <summary>An HSM's copy of the backup key: the trusted one; a key of the same label that someone with the user PIN made is never trusted.</summary>
    public static IObjectHandle? FindMemberBackupKey(ISession s) =>
        s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(s, CKA.CKA_LABEL, BackupKeyLabel), A(s, CKA.CKA_TRUSTED, true)]).FirstOrDefault();

    public static IObjectHandle? FindKey(ISession s, string keyId) => FindSecretKey(s, KeyLabelPrefix + keyId);

    /// <summary>The key IDs of the KMS keys in the token, sorted.</summary>
    public static List<(string KeyId, IObjectHandle Handle)> ListKeys(ISession s)
    {
        var result = new List<(string, IObjectHandle)>();
        foreach (var handle in s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)]))
        {
            var label = s.GetAttributeValue(handle, [CKA.CKA_LABEL])[0].GetValueAsString() ?? string.Empty;
            if (label.StartsWith(KeyLabelPrefix, StringComparison.Ordinal))
            {
                result.Add((label[KeyLabelPrefix.Length..], handle));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }

    public static IObjectHandle? FindData(ISession s, string label) =>
        s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_DATA), A(s, CKA.CKA_LABEL, label)]).FirstOrDefault();

    public static List<(string Label, IObjectHandle Handle)> ListData(ISession s, string labelPrefix)
    {
        var result = new List<(string, IObjectHandle)>();
        foreach (var handle in s.FindAllObjects([A(s, CKA.CKA_CLASS, CKO.CKO_DATA), A(s, CKA.CKA_APPLICATION, Application)]))
        {
            var label = s.GetAttributeValue(handle, [CKA.CKA_LABEL])[0].GetValueAsString() ?? string.Empty;
            if (label.StartsWith(labelPrefix, StringComparison.Ordinal))
            {
                result.Add((label, handle));
            }
        }

        return result;
    }

    public static byte[] ReadValue(ISession s, IObjectHandle handle) => s.GetAttributeValue(handle, [CKA.CKA_VALUE])[0].GetValueAsByteArray() ?? [];

    /// <summary>Writes a private data object, replacing one of the same label.</summary>
    public static void WriteData(ISession s, string label, byte[] value)
    {
        var old = FindData(s, label);
        s.CreateObject(
        [
            A(s, CKA.CKA_CLASS, CKO.CKO_DATA),
            A(s, CKA.CKA_TOKEN, true),
            A(s, CKA.CKA_PRIVATE, true),
            A(s, CKA.CKA_APPLICATION, Application),
            A(s, CKA.CKA_LABEL, label),
            A(s, CKA.CKA_VALUE, value),
        ]);
        if (old is not null)
        {
            s.DestroyObject(old);
        }
    }

    public static IMechanism AesKeyWrap(ISession s) => s.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_WRAP);

    public static IMechanism AesGcm(ISession s, byte[] iv, byte[] aad) =>
        s.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, s.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, (ulong)iv.Length * 8, aad, 128));

    public static IMechanism RsaOaep(ISession s) =>
        s.Factories.MechanismFactory.Create(CKM.CKM_RSA_PKCS_OAEP, s.Factories.MechanismParamsFactory.CreateCkRsaPkcsOaepParams(
            ConvertUtils.UInt64FromCKM(CKM.CKM_SHA_1), ConvertUtils.UInt64FromCKG(CKG.CKG_MGF1_SHA1), (ulong)CKZ.CKZ_DATA_SPECIFIED, null));
}
