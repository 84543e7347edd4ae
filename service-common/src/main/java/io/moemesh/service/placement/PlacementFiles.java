package io.moemesh.service.placement;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.moemesh.proto.router.v1.Placement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** A placement file is the protobuf JSON form of {@code moemesh.router.v1.Placement}. */
public final class PlacementFiles {
    private PlacementFiles() {
    }

    public static Placement read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": placement file not found");
        }
        try {
            return parse(Files.readString(file, StandardCharsets.UTF_8), file.toString());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read placement file (" + e.getMessage() + ")", e);
        }
    }

    public static Placement parse(String json, String source) {
        Placement.Builder b = Placement.newBuilder();
        try {
            JsonFormat.parser().merge(json, b);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalArgumentException(source + ": not a moemesh.router.v1.Placement in JSON (" + e.getMessage() + ")", e);
        }
        return b.build();
    }

    public static String toJson(Placement p) {
        try {
            return JsonFormat.printer().print(p);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes atomically (temp file + rename), so a watcher never reads half a placement. */
    public static void write(Path file, Placement p) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            Files.createDirectories(parent);
            Path tmp = Files.createTempFile(parent, file.getFileName().toString(), ".tmp");
            Files.writeString(tmp, toJson(p), StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(file + ": cannot write placement file", e);
        }
    }
}
