package io.moemesh.gateway.auth;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Bearer API keys, each mapped to a tenant id. Keys are kept only as SHA-256 digests and compared in
 * constant time ({@link MessageDigest#isEqual}) against every entry, so neither timing nor a heap dump reveals
 * them; they are never logged. Sources: a file of {@code key tenant} lines ({@code #} comments) and/or a
 * {@code key:tenant,key:tenant} string (environment). No keys configured = auth off (local mode).
 */
public final class ApiKeys {
    private record Entry(byte[] digest, String tenant) {
    }

    private final List<Entry> entries;

    private ApiKeys(List<Entry> entries) {
        this.entries = List.copyOf(entries);
    }

    public static ApiKeys load(Path file, String inline) {
        List<Entry> out = new ArrayList<>();
        if (file != null) {
            List<String> lines;
            try {
                lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException("API key file " + file + " is not readable", e);
            }
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i).strip();
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                String[] parts = line.split("\\s+");
                if (parts.length != 2) {
                    throw new IllegalArgumentException("API key file " + file + " line " + (i + 1)
                            + ": expected \"KEY TENANT\"");
                }
                out.add(new Entry(digest(parts[0]), parts[1]));
            }
        }
        if (inline != null && !inline.isBlank()) {
            String[] pairs = inline.split(",");
            for (int i = 0; i < pairs.length; i++) {
                int colon = pairs[i].lastIndexOf(':');
                String key = colon < 0 ? "" : pairs[i].substring(0, colon).strip();
                String tenant = colon < 0 ? "" : pairs[i].substring(colon + 1).strip();
                // An empty key would let "Authorization: Bearer " in; keys and tenants with spaces cannot be
                // written to a key file (moemesh up turns these pairs into one). The key itself is never quoted.
                if (key.isEmpty() || tenant.isEmpty() || hasSpace(key) || hasSpace(tenant)) {
                    throw new IllegalArgumentException("API keys must be KEY:TENANT pairs separated by commas, "
                            + "without spaces inside a key or tenant (pair " + (i + 1) + " is not)");
                }
                out.add(new Entry(digest(key), tenant));
            }
        }
        refuseAmbiguous(out);
        return new ApiKeys(out);
    }

    /**
     * One key of two tenants would make the tenant, and with it the tenant's rate limit and prefix-cache salt,
     * depend on the order of the sources: refused, naming the tenants (never the key).
     */
    private static void refuseAmbiguous(List<Entry> entries) {
        for (int i = 0; i < entries.size(); i++) {
            for (int j = i + 1; j < entries.size(); j++) {
                Entry a = entries.get(i);
                Entry b = entries.get(j);
                if (MessageDigest.isEqual(a.digest, b.digest) && !a.tenant.equals(b.tenant)) {
                    throw new IllegalArgumentException("an API key is listed for two tenants, " + a.tenant + " and "
                            + b.tenant + ": give each key one tenant");
                }
            }
        }
    }

    public static ApiKeys none() {
        return new ApiKeys(List.of());
    }

    public boolean enabled() {
        return !entries.isEmpty();
    }

    /** The tenant of a presented key; empty when it matches none. Every entry is compared, match or not. */
    public Optional<String> tenantOf(String presented) {
        if (presented == null) {
            return Optional.empty();
        }
        byte[] d = digest(presented);
        String found = null;
        for (Entry e : entries) {
            if (MessageDigest.isEqual(e.digest, d) && found == null) {
                found = e.tenant;
            }
        }
        return Optional.ofNullable(found);
    }

    /** The key of an {@code Authorization: Bearer KEY} header value, or null. */
    public static String bearer(String header) {
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        return header.substring(7).strip();
    }

    private static boolean hasSpace(String s) {
        return s.chars().anyMatch(Character::isWhitespace);
    }

    private static byte[] digest(String key) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
