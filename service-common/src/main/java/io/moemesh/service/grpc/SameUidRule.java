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
    /** The effective uid of this process: the owner of {@code /proc/self} (proc(5)). */
    static SameUidRule ofThisProcess() {
        try {
            return new SameUidRule((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read this process's uid from /proc/self (" + e.getMessage() + ")", e);
        }
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
