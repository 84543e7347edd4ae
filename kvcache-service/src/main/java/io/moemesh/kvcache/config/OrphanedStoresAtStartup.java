package io.moemesh.kvcache.config;

import io.moemesh.kvcache.tier.OrphanedStores;
import io.moemesh.kvcache.tier.OrphanedStores.Orphan;
import io.moemesh.service.settings.SettingRefusedException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What startup does, before any tier opens, with the model stores in {@code ssd-dir} that no served model uses
 * ({@link OrphanedStores}; {@code moemesh.kvcache.orphaned-stores}). Why it matters: a change of block-tokens, of
 * the model, or of the fingerprint version opens a new, empty store beside the old one, which is never read again
 * but keeps its bytes; on a volume sized for one store (the chart's) the new one then fills the volume long before
 * its ssd-bytes (ENOSPC: puts and compaction fail, a stop's demotion loses the DRAM tier's blocks).
 *
 * <p>{@code delete} deletes each of them that is really a store of ours and that nothing has open
 * ({@link OrphanedStores#delete}), logging each. {@code keep} leaves them, and so does {@code delete} for a folder it
 * must not delete; the service then refuses to start when what is kept is what leaves the served stores too little
 * room: their {@link #footprintBytes footprint} is more than the volume's usable space plus what they hold already,
 * but not more once the kept stores' bytes are added (deleting them would make the room). A volume too small for the
 * footprint even without them (an empty folder kept after a {@code moemesh up} of another model, on a laptop with
 * less free space than the defaults' footprint) is only warned of, as it is without any kept store: the stores are
 * not what is short, and the served ones may never grow that far.
 */
final class OrphanedStoresAtStartup {
    private static final Logger log = LoggerFactory.getLogger(OrphanedStoresAtStartup.class);

    private OrphanedStoresAtStartup() {
    }

    /**
     * The most the served stores may come to hold on the volume, as the chart's volume check counts it: the sealed
     * segments up to ssd-bytes ÷ compaction-live-fraction (compaction rewrites a segment only once less than that
     * fraction of it is live; with compaction off dead space is never reclaimed, and ssd-bytes is the least they
     * hold), the whole DRAM tier a stop demotes on top, and the segment each model is writing.
     */
    static long footprintBytes(KvCacheProperties props, int models) {
        double fraction = props.compactionPeriod().isZero() ? 0 : props.compactionLiveFraction();
        double sealed = fraction > 0 ? Math.ceil(props.ssdBytes() / fraction) : props.ssdBytes();
        double total = sealed + props.dramBytes() + (double) models * props.segmentBytes();
        return total >= Long.MAX_VALUE ? Long.MAX_VALUE : (long) total;
    }

    /** The footprint's rule in the words of the properties, for a message. */
    static String footprintRule(KvCacheProperties props) {
        return (props.compactionPeriod().isZero() || props.compactionLiveFraction() == 0
                ? "ssd-bytes (compaction is off, so dead space comes on top)"
                : "ssd-bytes ÷ compaction-live-fraction") + " + dram-bytes + segment-bytes per served model";
    }

    /**
     * @param ssdDir         {@code moemesh.kvcache.ssd-dir}
     * @param served         the store folders the served models open
     * @param delete         {@code orphaned-stores} is {@code delete}
     * @param footprintBytes what the served stores may come to hold ({@link #footprintBytes})
     * @param footprintRule  how that is counted ({@link #footprintRule})
     * @param usableBytes    the usable space of the volume ssd-dir is on, asked only when a store is kept
     * @return the stores no served model uses that are kept
     * @throws SettingRefusedException naming the setting, the stores kept and the bytes, when they leave too little
     *                                 room (deleting them would make it)
     */
    static List<Orphan> settle(Path ssdDir, Set<Path> served, boolean delete, long footprintBytes,
                               String footprintRule, LongSupplier usableBytes) {
        List<Orphan> orphans = OrphanedStores.find(ssdDir, served);
        List<Orphan> kept = new ArrayList<>();
        List<String> reasons = new ArrayList<>();
        for (Orphan o : orphans) {
            if (!delete) {
                kept.add(o);
                reasons.add("");
                continue;
            }
            Optional<String> left = OrphanedStores.delete(o.dir());
            if (left.isEmpty()) {
                log.info("{}: deleted, a model store no served model uses ({} bytes: another model, block size or "
                        + "fingerprint version; moemesh.kvcache.orphaned-stores=delete)", o.dir(), o.bytes());
            } else {
                log.warn("{}: a model store no served model uses ({} bytes), not deleted: {}", o.dir(), o.bytes(),
                        left.get());
                kept.add(o);
                reasons.add(": " + left.get());
            }
        }
        if (kept.isEmpty()) {
            return kept;
        }
        long held = served.stream().filter(Files::isDirectory).mapToLong(OrphanedStores::bytesUnder).sum();
        long usable = usableBytes.getAsLong();
        long keptBytes = kept.stream().mapToLong(Orphan::bytes).sum();
        long room = saturatedSum(usable, held);
        if (footprintBytes > room && footprintBytes <= saturatedSum(room, keptBytes)) {
            StringBuilder stores = new StringBuilder();
            for (int i = 0; i < kept.size(); i++) {
                stores.append(i == 0 ? "" : ", ").append(kept.get(i).dir()).append(" (").append(kept.get(i).bytes())
                        .append(" bytes").append(reasons.get(i)).append(')');
            }
            throw new SettingRefusedException("moemesh.kvcache.orphaned-stores", "moemesh.kvcache.orphaned-stores "
                    + "(MOEMESH_KVCACHE_ORPHANED_STORES) is "
                    + (delete ? "delete" : "keep") + ", and the model stores in " + ssdDir + " that no served model "
                    + "uses (another model, block size or fingerprint version: never read again) leave the served "
                    + "stores too little room: " + stores + ". The volume has " + usable + " bytes usable and the "
                    + "served stores hold " + held + ", but they may come to hold " + footprintBytes + " bytes ("
                    + footprintRule + "), so the volume would fill (puts and compaction failing, a stop losing the "
                    + "DRAM tier's blocks); without the " + keptBytes + " bytes of those stores it would not. "
                    + (delete
                    ? "They could not be deleted (above); delete them yourself if nothing else serves them"
                    : "Set moemesh.kvcache.orphaned-stores=delete (MOEMESH_KVCACHE_ORPHANED_STORES=delete) to delete "
                    + "them at startup, or delete them yourself if no other configuration on this directory serves "
                    + "them"));
        }
        if (!delete) {
            for (Orphan o : kept) {
                log.warn("{}: a model store no served model uses ({} bytes: another model, block size or fingerprint "
                        + "version; not counted in ssd-bytes); moemesh.kvcache.orphaned-stores=delete deletes it at "
                        + "startup, or delete it to free the space if nothing else serves it", o.dir(), o.bytes());
            }
        }
        if (footprintBytes > room) {
            log.warn("{}: the volume has {} bytes usable and the served stores hold {}, but they may come to hold {} "
                    + "bytes ({}): the volume is too small for them even without the {} bytes of the model stores no "
                    + "served model uses (above), and fills if they grow that far (puts and compaction failing, a "
                    + "stop losing the DRAM tier's blocks); lower moemesh.kvcache.ssd-bytes or dram-bytes, or free "
                    + "space on the volume", ssdDir, usable, held, footprintBytes, footprintRule, keptBytes);
        }
        return kept;
    }

    /** {@code a + b} for non-negative counts, {@link Long#MAX_VALUE} when it would overflow. */
    private static long saturatedSum(long a, long b) {
        long sum = a + b;
        return sum < 0 ? Long.MAX_VALUE : sum;
    }

    /** The usable bytes of the file store {@code dir} is on (the SSD volume). */
    static long usableBytes(Path dir) {
        try {
            return Files.getFileStore(dir).getUsableSpace();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot read the volume's free space (" + e.getMessage() + ")", e);
        }
    }
}
