package io.moemesh.gateway.auth;

import io.moemesh.service.settings.SettingRefusedException;
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
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bearer API keys, each mapped to a tenant id. Keys are kept only as SHA-256 digests and compared in
 * constant time ({@link MessageDigest#isEqual}) against every entry, so neither timing nor a heap dump reveals
 * them; they are never logged. Sources: a file of {@code KEY TENANT} lines ({@code #} comments) and/or a
 * {@code key:tenant,key:tenant} string (environment). Auth is off (local mode) only when neither source is set (a
 * blank inline string counts as unset). A source that is set and gives no key is refused: a key file of comments
 * only, or an inline string without a pair, is a mistake or every key revoked, never a wish to let everyone in as
 * tenant {@code default}. Whether auth is on, and with how many keys, is logged at load. A running gateway follows
 * changes of the key file ({@link ApiKeyFileReload}).
 */
public final class ApiKeys {
    private static final Logger log = LoggerFactory.getLogger(ApiKeys.class);
    static final String FILE_PROPERTY = "moemesh.gateway.api-keys-file";
    static final String INLINE_PROPERTY = "moemesh.gateway.api-keys";

    private record Entry(byte[] digest, String tenant) {
    }

    /** Replaced whole when the key file is reloaded ({@link ApiKeyFileReload}); a lookup reads it once. */
    private volatile List<Entry> entries;

    private ApiKeys(List<Entry> entries) {
        this.entries = List.copyOf(entries);
    }

    /**
     * Serves {@code fresh}'s keys from now on in place of these: the key file changed ({@link ApiKeyFileReload}).
     * {@code fresh} is a successful {@link #load} of the same sources, so auth stays on.
     */
    void replaceWith(ApiKeys fresh) {
        entries = fresh.entries;
    }

    /**
     * @param file   {@value #FILE_PROPERTY}, or null when unset
     * @param inline {@value #INLINE_PROPERTY}, or null (blank: unset)
     * @throws SettingRefusedException naming the property (and the line or pair, never the key) when a source is
     *                                 malformed or gives no key (the gateway loads them at startup)
     */
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
                    throw new SettingRefusedException(FILE_PROPERTY, "API key file " + file + " line " + (i + 1)
                            + ": expected \"KEY TENANT\"");
                }
                out.add(new Entry(digest(parts[0]), parts[1]));
            }
            if (out.isEmpty()) {
                throw new SettingRefusedException(FILE_PROPERTY, FILE_PROPERTY + " " + file + " holds no keys (only "
                        + "comments or blank lines): remove the setting to run without auth, or add a \"KEY TENANT\" "
                        + "line");
            }
        }
        if (inline != null && !inline.isBlank()) {
            String[] pairs = inline.split(",");
            if (pairs.length == 0) {
                throw new SettingRefusedException(INLINE_PROPERTY, INLINE_PROPERTY + " holds no KEY:TENANT pair: "
                        + "remove the setting to run without auth");
            }
            for (int i = 0; i < pairs.length; i++) {
                int colon = pairs[i].lastIndexOf(':');
                String key = colon < 0 ? "" : pairs[i].substring(0, colon).strip();
                String tenant = colon < 0 ? "" : pairs[i].substring(colon + 1).strip();
                // An empty key would let "Authorization: Bearer " in; keys and tenants with spaces cannot be
                // written to a key file (moemesh up turns these pairs into one). The key itself is never quoted.
                if (key.isEmpty() || tenant.isEmpty() || hasSpace(key) || hasSpace(tenant)) {
                    throw new SettingRefusedException(INLINE_PROPERTY, "API keys must be KEY:TENANT pairs separated "
                            + "by commas, without spaces inside a key or tenant (pair " + (i + 1) + " is not)");
                }
                // Nor a key that starts with #: in a key file its line would be a comment, and the key gone.
                if (key.startsWith("#")) {
                    throw new SettingRefusedException(INLINE_PROPERTY, INLINE_PROPERTY + ": a key must not start "
                            + "with # (a key file reads such a line as a comment; pair " + (i + 1) + " does)");
                }
                out.add(new Entry(digest(key), tenant));
            }
        }
        refuseAmbiguous(out, inline != null && !inline.isBlank() ? INLINE_PROPERTY : FILE_PROPERTY);
        if (out.isEmpty()) {
            log.warn("API-key auth is off ({} and {} unset): every request is served as tenant default",
                    FILE_PROPERTY, INLINE_PROPERTY);
        } else {
            log.info("API-key auth is on: {} key(s) of {} tenant(s)", out.size(),
                    out.stream().map(Entry::tenant).distinct().count());
        }
        return new ApiKeys(out);
    }

    /**
     * One key of two tenants would make the tenant, and with it the tenant's rate limit and prefix-cache salt,
     * depend on the order of the sources: refused, naming the tenants (never the key).
     */
    private static void refuseAmbiguous(List<Entry> entries, String setting) {
        for (int i = 0; i < entries.size(); i++) {
            for (int j = i + 1; j < entries.size(); j++) {
                Entry a = entries.get(i);
                Entry b = entries.get(j);
                if (MessageDigest.isEqual(a.digest, b.digest) && !a.tenant.equals(b.tenant)) {
                    throw new SettingRefusedException(setting, "an API key is listed for two tenants, " + a.tenant
                            + " and " + b.tenant + ": give each key one tenant");
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
