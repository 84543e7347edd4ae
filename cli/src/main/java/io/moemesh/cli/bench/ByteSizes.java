package io.moemesh.cli.bench;

import java.util.Locale;

/** Byte sizes of bench options: {@code 4096}, {@code 512k}, {@code 256m}, {@code 4g} (binary units). */
final class ByteSizes {
    private ByteSizes() {
    }

    /** @throws IllegalArgumentException naming the option when the value is not a positive size */
    static long parse(String option, String value) {
        String v = value == null ? "" : value.strip().toLowerCase(Locale.ROOT);
        int shift = 0;
        if (!v.isEmpty()) {
            switch (v.charAt(v.length() - 1)) {
                case 'k' -> shift = 10;
                case 'm' -> shift = 20;
                case 'g' -> shift = 30;
                case 't' -> shift = 40;
                default -> shift = -1;
            }
            if (shift >= 0) {
                v = v.substring(0, v.length() - 1);
            } else {
                shift = 0;
            }
        }
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            n = -1;
        }
        if (n < 1 || n > (Long.MAX_VALUE >> 1) >> shift) {
            throw new IllegalArgumentException(option + " must be a positive size such as 512m or 4g, got " + value);
        }
        return n << shift;
    }

    /** {@code 4.0 GiB}, {@code 256.0 MiB}, {@code 12 KiB}, {@code 100 B}. */
    static String format(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
        }
        if (bytes >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
        }
        return bytes >= 1024 ? (bytes >> 10) + " KiB" : bytes + " B";
    }
}
