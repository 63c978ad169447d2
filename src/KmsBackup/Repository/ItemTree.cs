using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>
/// A content-defined tree over a snapshot's sorted items (a "prolly tree"): leaves end after an item
/// whose keyed name hash hits a boundary, branches end after a child whose ID does, so the same
/// items always make the same objects and a change rewrites only the leaf that holds it and the
/// branches above it. Unchanged parts are shared by every recovery point that contains them.
/// </summary>
internal static class ItemTree
{
    /// <summary>Average items per leaf (a power of two).</summary>
    public const int LeafTarget = 32;

    /// <summary>
    /// Average children per branch (a power of two). Small branches keep an incremental's cost close to
    /// its leaves': each change also rewrites the branches above its leaf, and on a large instance those
    /// are not shared with other changes.
    /// </summary>
    public const int BranchTarget = 32;

    private const int MaximumLeaf = LeafTarget * 8;
    private const int MaximumBranch = BranchTarget * 8;

    /// <summary>
    /// Writes the tree of <paramref name="items"/> (sorted by name) and returns its root. A caller that writes
    /// several trees of large items passes <paramref name="leafBuffer"/> to keep one buffer, grown once, for all of
    /// them; it is left zeroed.
    /// </summary>
    public static async Task<TreeRoot> WriteAsync<T>(
        IReadOnlyList<T> items, Func<T, string> nameOf, Action<RecordWriter, T> write, byte leafRole,
        PackWriter writer, ulong salt, CancellationToken cancellationToken, RecordWriter? leafBuffer = null)
    {
        var children = new List<ChildRef>();
        var leaf = leafBuffer ?? new RecordWriter(64 * 1024, pinned: true);
        try
        {
            var start = 0;
            for (var i = 0; i < items.Count; i++)
            {
                var boundary = (Hash(salt, nameOf(items[i])) & (LeafTarget - 1)) == 0 || i - start + 1 >= MaximumLeaf;
                if (boundary || i == items.Count - 1)
                {
                    children.Add(await WriteLeafAsync(items, start, i + 1, write, leafRole, leaf, writer, cancellationToken).ConfigureAwait(false));
                    start = i + 1;
                }
            }

            if (items.Count == 0)
            {
                children.Add(await WriteLeafAsync(items, 0, 0, write, leafRole, leaf, writer, cancellationToken).ConfigureAwait(false));
            }
        }
        finally
        {
            leaf.Clear();
        }

        byte level = 0;
        while (children.Count > 1)
        {
            level++;
            var parents = new List<ChildRef>();
            var start = 0;
            for (var i = 0; i < children.Count; i++)
            {
                var boundary = ((children[i].Id.A ^ salt) & (BranchTarget - 1)) == 0 || i - start + 1 >= MaximumBranch;
                if (boundary || i == children.Count - 1)
                {
                    parents.Add(await WriteBranchAsync(children, start, i + 1, level, writer, cancellationToken).ConfigureAwait(false));
                    start = i + 1;
                }
            }

            children = parents;
        }

        return new TreeRoot(children[0].Id, level, children[0].Count);
    }

    /// <summary>
    /// Reads every item of the tree under <paramref name="root"/>, in name order, checking each object. The leaves'
    /// plaintext (key material, secret ciphertexts) is zeroed once decoded: what <paramref name="read"/> keeps is all that remains,
    /// and if reading fails, <paramref name="discard"/> is called on each item read so far.
    /// </summary>
    public static async Task<List<T>> ReadAsync<T>(ObjectStore objects, TreeRoot root, byte leafRole, ReadItem<T> read, CancellationToken cancellationToken, Action<T>? discard = null)
    {
        var level = new List<ObjectId> { root.Id };
        for (var depth = root.Level; depth > 0; depth--)
        {
            var nodes = await objects.ReadObjectsAsync(level.Distinct().ToList(), cancellationToken).ConfigureAwait(false);
            var next = new List<ObjectId>();
            foreach (var id in level)
            {
                foreach (var child in DecodeBranch(nodes[id], id, (byte)depth))
                {
                    next.Add(child.Id);
                }
            }

            level = next;
        }

        var leaves = await objects.ReadObjectsAsync(level.Distinct().ToList(), cancellationToken).ConfigureAwait(false);
        var items = new List<T>((int)Math.Min(root.Count, 50_000_000));
        try
        {
            foreach (var id in level)
            {
                var reader = new RecordReader(leaves[id], $"leaf {id.Short}");
                var count = reader.ReadCount(MaximumLeaf);
                for (var i = 0; i < count; i++)
                {
                    items.Add(read(ref reader));
                }

                reader.ExpectEnd();
            }

            if (items.Count != root.Count)
            {
                throw RepositoryErrors.Integrity($"tree {root.Id.Short}", $"it holds {items.Count} items where its manifest says {root.Count}");
            }
        }
        catch when (discard is not null)
        {
            items.ForEach(discard);
            throw;
        }
        finally
        {
            foreach (var plaintext in leaves.Values)
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }

        return items;
    }

    /// <summary>
    /// Adds every object ID the tree under <paramref name="root"/> refers to, the root included, to
    /// <paramref name="into"/>; subtrees whose root is there already are not read again.
    /// </summary>
    public static async Task CollectAsync(ObjectStore objects, TreeRoot root, ISet<ObjectId> into, CancellationToken cancellationToken)
    {
        if (!into.Add(root.Id))
        {
            return;
        }

        var level = new List<ObjectId> { root.Id };
        for (var depth = root.Level; depth > 0; depth--)
        {
            var unseen = level.Distinct().ToList();
            var nodes = await objects.ReadObjectsAsync(unseen, cancellationToken).ConfigureAwait(false);
            var next = new List<ObjectId>();
            foreach (var id in unseen)
            {
                foreach (var child in DecodeBranch(nodes[id], id, (byte)depth))
                {
                    if (into.Add(child.Id) && depth > 1)
                    {
                        next.Add(child.Id);
                    }
                }
            }

            level = next;
        }
    }

    /// <summary>
    /// Adds every object ID under <paramref name="root"/> to <paramref name="into"/>, walking branches that
    /// are already open (verify has opened every object once); a branch missing from
    /// <paramref name="branches"/> is added but not walked, and reported missing by the caller.
    /// </summary>
    public static void CollectFrom(TreeRoot root, IReadOnlyDictionary<ObjectId, byte[]> branches, ISet<ObjectId> into)
    {
        if (!into.Add(root.Id))
        {
            return;
        }

        var level = new List<ObjectId> { root.Id };
        for (var depth = root.Level; depth > 0 && level.Count > 0; depth--)
        {
            var next = new List<ObjectId>();
            foreach (var id in level)
            {
                if (!branches.TryGetValue(id, out var plain))
                {
                    continue;
                }

                foreach (var child in DecodeBranch(plain, id, (byte)depth))
                {
                    if (into.Add(child.Id) && depth > 1)
                    {
                        next.Add(child.Id);
                    }
                }
            }

            level = next;
        }
    }

    public delegate T ReadItem<T>(ref RecordReader reader);

    private static async Task<ChildRef> WriteLeafAsync<T>(
        IReadOnlyList<T> items, int start, int end, Action<RecordWriter, T> write, byte role,
        RecordWriter leaf, PackWriter writer, CancellationToken cancellationToken)
    {
        leaf.Clear();
        leaf.WriteVarUInt((ulong)(end - start));
        for (var i = start; i < end; i++)
        {
            write(leaf, items[i]);
        }

        // The leaf is handed over in place: AddAsync reads it before it awaits anything, and a copy would be one
        // more buffer of key material and secret ciphertexts that nothing zeroes.
        var id = await writer.AddAsync(role, leaf.WrittenMemory, cancellationToken).ConfigureAwait(false);
        return new ChildRef(id, end - start);
    }

    private static async Task<ChildRef> WriteBranchAsync(List<ChildRef> children, int start, int end, byte level, PackWriter writer, CancellationToken cancellationToken)
    {
        var branch = new RecordWriter(64 + ((end - start) * 64));
        branch.WriteByte(level);
        branch.WriteVarUInt((ulong)(end - start));
        long total = 0;
        Span<byte> id = stackalloc byte[ObjectId.Size];
        for (var i = start; i < end; i++)
        {
            children[i].Id.Write(id);
            branch.WriteRaw(id);
            branch.WriteVarUInt((ulong)children[i].Count);
            total += children[i].Count;
        }

        var branchId = await writer.AddAsync(ObjectRole.Branch, branch.ToArray(), cancellationToken).ConfigureAwait(false);
        return new ChildRef(branchId, total);
    }

    private static List<ChildRef> DecodeBranch(byte[] plain, ObjectId id, byte expectedLevel)
    {
        var reader = new RecordReader(plain, $"branch {id.Short}");
        if (reader.ReadByte() != expectedLevel)
        {
            throw reader.Malformed("its level is not where the tree puts it");
        }

        var count = reader.ReadCount(MaximumBranch);
        var children = new List<ChildRef>(count);
        for (var i = 0; i < count; i++)
        {
            var childId = ObjectId.Read(reader.ReadRaw(ObjectId.Size));
            children.Add(new ChildRef(childId, (long)reader.ReadVarUInt()));
        }

        reader.ExpectEnd();
        return children;
    }

    private static ulong Hash(ulong salt, string name)
    {
        // A keyed FNV-1a over the UTF-8 name, finished with a 64-bit mixer: cheap, stable across
        // processes, and (through the secret salt) revealing nothing about names from the boundaries.
        var hash = 14695981039346656037UL ^ salt;
        Span<byte> buffer = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetByteCount(name) <= buffer.Length ? buffer[..Encoding.UTF8.GetBytes(name, buffer)] : Encoding.UTF8.GetBytes(name);
        foreach (var b in bytes)
        {
            hash = unchecked((hash ^ b) * 1099511628211UL);
        }

        hash ^= hash >> 33;
        hash = unchecked(hash * 0xff51afd7ed558ccdUL);
        hash ^= hash >> 33;
        return hash;
    }

    private readonly record struct ChildRef(ObjectId Id, long Count);
}

/// <summary>The root of an item tree: its object, its height and how many items it holds.</summary>
internal readonly record struct TreeRoot(ObjectId Id, byte Level, long Count);
