using System.Text;

namespace KmsBackup.Repository;
// The pack indexes: reading them into the in-memory index, and their sealed encoding.
internal sealed partial class ObjectStore
{
    /// <summary>
    /// Brings the in-memory index in line with the store: reads the index of each pack this process has not
    /// seen, and forgets each pack whose index is gone (a prune deletes a pack's index before the pack). A
    /// damaged index, or a name under <c>index/</c> that is not a pack ID, is skipped: its pack's objects are
    /// simply unknown here (verify names them), and the repository still opens.
    /// </summary>
    /// <returns>The names under <c>index/</c> that could not be used, each with why.</returns>
    public async Task<IReadOnlyList<(string Key, string Problem)>> RefreshIndexAsync(CancellationToken cancellationToken)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        var unusable = new List<(string, string)>();
        await foreach (var entry in _store.ListAsync(IndexPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[IndexPrefix.Length..];
            if (!IsPackId(packId))
            {
                unusable.Add((entry.Key, $"the name '{packId}' under index/ is not a pack ID"));
                continue;
            }

            listed.Add(packId);
        }

        List<string> unseen;
        lock (_gate)
        {
            foreach (var gone in _packs.Keys.Where(p => !listed.Contains(p)).ToList())
            {
                DropPack(gone);
            }

            unseen = [.. listed.Where(p => !_packs.ContainsKey(p))];
        }

        foreach (var packId in unseen)
        {
            var bytes = await _store.TryReadAsync(IndexKey(packId), cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue; // deleted meanwhile by a prune
            }

            try
            {
                var (keyInfo, entries) = await WithKeysAsync(() => DecodeIndex(packId, bytes), cancellationToken).ConfigureAwait(false);
                lock (_gate)
                {
                    AddPack(packId, keyInfo, [.. entries]);
                }
            }
            catch (BackupIntegrityException e)
            {
                unusable.Add((IndexKey(packId), e.Message));
            }
        }

        return unusable;
    }

    public (PackKeyInfo Key, List<(ObjectId Id, ObjectLocation Location)> Entries) DecodeIndex(string packId, byte[] sealedIndex)
    {
        var name = $"index of pack {Short(packId)}";
        var plain = _crypto.Open(sealedIndex, "index:" + packId, name);
        var reader = new RecordReader(plain, name);
        var generation = reader.ReadVarUInt();
        if (generation is 0 or > uint.MaxValue)
        {
            throw reader.Malformed("its key generation is out of range");
        }

        var keyInfo = new PackKeyInfo((uint)generation, reader.ReadRaw(RepositoryCrypto.PackSaltSize).ToArray());
        var count = reader.ReadCount(RepositoryCrypto.MaximumObjectsPerPack);
        var result = new List<(ObjectId, ObjectLocation)>(count);
        for (var i = 0; i < count; i++)
        {
            var id = ObjectId.Read(reader.ReadRaw(ObjectId.Size));
            var role = reader.ReadByte();
            var offset = reader.ReadInt32();
            var length = reader.ReadInt32();
            if (offset < PackHeaderSize || length < RepositoryCrypto.Overhead || (long)offset + length > int.MaxValue)
            {
                throw reader.Malformed("an entry is out of range");
            }

            result.Add((id, new ObjectLocation(packId, offset, length, role)));
        }

        reader.ExpectEnd();
        return (keyInfo, result);
    }

    internal byte[] EncodeIndex(string packId, PackKeyInfo keyInfo, IReadOnlyList<(ObjectId Id, ObjectLocation Location)> entries)
    {
        var writer = new RecordWriter(48 + (entries.Count * 48));
        writer.WriteVarUInt(keyInfo.Generation);
        writer.WriteRaw(keyInfo.Salt);
        writer.WriteVarUInt((ulong)entries.Count);
        Span<byte> idBytes = stackalloc byte[ObjectId.Size];
        foreach (var (id, location) in entries)
        {
            id.Write(idBytes);
            writer.WriteRaw(idBytes);
            writer.WriteByte(location.Role);
            writer.WriteInt32(location.Offset);
            writer.WriteInt32(location.Length);
        }

        return _crypto.Seal(writer.WrittenSpan, Encoding.UTF8.GetBytes("index:" + packId));
    }
}
