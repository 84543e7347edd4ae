package io.moemesh.service.grpc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Which peers of a {@code peer-uid} domain socket are served: exactly those whose uid (as the kernel reports it for the
 * connecting process, {@code SO_PEERCRED}, unix(7)) is the server's own. Root is not an exception when the server is
 * not root: on the local mesh the owner's uid holds every key and is the only uid that needs the socket; root can read
 * those keys anyway, so admitting it would add no protection and refusing it costs nothing (a root operator runs the
 * mesh as root, and then root is the owner).
 *
 * @param ownUid the server's effective uid
 */
record SameUidRule(int ownUid) {
    /**
     * The effective uid of this process, from the {@code Uid:} line of {@code /proc/self/status} (proc(5)). Not the
     * owner of {@code /proc/self}: that is root:root whenever the process is not dumpable (proc(5), "/proc/pid":
     * after a set-user-ID exec, a change of credentials, or {@code prctl(PR_SET_DUMPABLE, 0)}), which would admit root
     * and refuse the owner's own processes.
     */
    static SameUidRule ofThisProcess() {
        Path status = Path.of("/proc/self/status");
        try {
            return new SameUidRule(effectiveUid(Files.readString(status)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read this process's uid from " + status + " (" + e.getMessage() + ")", e);
        }
    }

    /**
     * The effective uid in a {@code /proc/<pid>/status} text: the second of the {@code Uid:} line's real, effective,
     * saved set and file-system uids (proc(5)), read as the unsigned uid_t it is (SO_PEERCRED's uid is the peer's
     * effective uid, unix(7), as the same int bits).
     *
     * @throws IllegalArgumentException if the text has no such line
     */
    static int effectiveUid(String status) {
        for (String line : status.split("\n")) {
            if (line.startsWith("Uid:")) {
                String[] uids = line.substring("Uid:".length()).strip().split("\\s+");
                if (uids.length >= 2) {
                    return Integer.parseUnsignedInt(uids[1]);
                }
            }
        }
        throw new IllegalArgumentException("no \"Uid:\" line with an effective uid in the process status");
    }

    /**
     * @param peerPid the connecting process's pid (for the log only)
     * @param peerUid its uid
     * @return why the connection is refused, or empty when it is served
     */
    Optional<String> refusal(int peerPid, int peerUid) {
        if (peerUid == ownUid) {
            return Optional.empty();
        }
        return Optional.of("peer pid " + peerPid + " runs as uid " + peerUid + ", not as this server's uid " + ownUid
                + " (unix-socket-security=peer-uid serves only its own uid)");
    }
}
