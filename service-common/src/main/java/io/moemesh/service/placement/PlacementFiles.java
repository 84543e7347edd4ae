package io.moemesh.service.placement;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import io.moemesh.proto.router.v1.Placement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A placement file is the protobuf JSON form of {@code moemesh.router.v1.Placement}.
 *
 * <p>Read forward-compatibly: a file written by a newer router may carry fields this reader's Placement does not
 * know yet (as {@code failure_domain} once was), and during a rolling upgrade the gateways and expert-services
 * still on the older version read it (the placement file, the ConfigMap's copy). Such fields are ignored, and named
 * in a warning so that a misspelt field stays visible; anything else that does not parse (a known field with a
 * value of the wrong type, JSON that is not JSON) is refused naming the file, and so is an object without a single
 * field of a Placement (every router writes the epoch).
 */
public final class PlacementFiles {
    private static final Logger log = LoggerFactory.getLogger(PlacementFiles.class);

    private PlacementFiles() {
    }

    /**
     * A parsed placement and the fields of the JSON that were ignored, unknown to this reader's Placement: each
     * named by its path (e.g. {@code instances[0].failureDomain}); empty when every field is known.
     */
    public record Parsed(Placement placement, List<String> ignoredFields) {
        public Parsed {
            ignoredFields = List.copyOf(ignoredFields);
        }
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

    /**
     * {@link #parseReporting}, with the ignored fields logged as a warning naming {@code source}.
     *
     * @throws IllegalArgumentException naming {@code source} when the JSON is not a Placement
     */
    public static Placement parse(String json, String source) {
        Parsed parsed = parseReporting(json, source);
        if (!parsed.ignoredFields().isEmpty()) {
            log.warn("{}: ignored fields unknown to this version's moemesh.router.v1.Placement (written by a newer "
                    + "version, or misspelt): {}", source, String.join(", ", parsed.ignoredFields()));
        }
        return parsed.placement();
    }

    /**
     * Parses strictly; when that fails only because of fields unknown to this reader, parses again ignoring them
     * and says which they were.
     *
     * @throws IllegalArgumentException naming {@code source} when the JSON is not a Placement even with its unknown
     *     fields ignored (a known field's value of the wrong type, malformed JSON), or has no field of a Placement
     */
    public static Parsed parseReporting(String json, String source) {
        Placement.Builder b = Placement.newBuilder();
        try {
            JsonFormat.parser().merge(json, b);
            return new Parsed(b.build(), List.of());
        } catch (InvalidProtocolBufferException strict) {
            List<String> unknown = unknownFields(json);
            if (unknown.isEmpty()) {
                throw notAPlacement(source, strict);
            }
            Placement.Builder lenient = Placement.newBuilder();
            try {
                JsonFormat.parser().ignoringUnknownFields().merge(json, lenient);
            } catch (InvalidProtocolBufferException e) {
                throw notAPlacement(source, e);
            }
            Placement p = lenient.build();
            if (p.equals(Placement.getDefaultInstance())) {
                // Every router writes an epoch (>= 1): an object of unknown fields only is some other file.
                throw new IllegalArgumentException(source + ": not a moemesh.router.v1.Placement in JSON (none of its "
                        + "fields is a Placement's: " + String.join(", ", unknown) + ")", strict);
            }
            return new Parsed(p, unknown);
        }
    }

    private static IllegalArgumentException notAPlacement(String source, InvalidProtocolBufferException e) {
        return new IllegalArgumentException(source + ": not a moemesh.router.v1.Placement in JSON (" + e.getMessage()
                + ")", e);
    }

    /**
     * The paths of the JSON's object keys that name no field of the message there; empty when it is not a JSON
     * object. The JSON is read as a {@code google.protobuf.Struct}, protobuf's model of any JSON object.
     */
    private static List<String> unknownFields(String json) {
        Struct.Builder tree = Struct.newBuilder();
        try {
            JsonFormat.parser().merge(json, tree);
        } catch (InvalidProtocolBufferException e) {
            return List.of(); // not a JSON object: the strict parser's message says what is wrong
        }
        List<String> out = new ArrayList<>();
        collectUnknown(tree.build(), Placement.getDescriptor(), "", out);
        return out;
    }

    private static void collectUnknown(Struct object, Descriptor type, String path, List<String> out) {
        for (Map.Entry<String, Value> entry : object.getFieldsMap().entrySet()) {
            String at = path.isEmpty() ? entry.getKey() : path + "." + entry.getKey();
            FieldDescriptor field = field(type, entry.getKey());
            if (field == null) {
                out.add(at);
            } else if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE && !field.isMapField()) {
                Value v = entry.getValue();
                if (v.hasStructValue()) {
                    collectUnknown(v.getStructValue(), field.getMessageType(), at, out);
                } else if (v.hasListValue()) {
                    List<Value> items = v.getListValue().getValuesList();
                    for (int i = 0; i < items.size(); i++) {
                        if (items.get(i).hasStructValue()) {
                            collectUnknown(items.get(i).getStructValue(), field.getMessageType(), at + "[" + i + "]",
                                    out);
                        }
                    }
                }
                // any other shape is the parser's to refuse
            }
        }
    }

    /** The field JsonFormat would bind {@code key} to: its JSON name (lowerCamel) or its proto name. */
    private static FieldDescriptor field(Descriptor type, String key) {
        for (FieldDescriptor f : type.getFields()) {
            if (f.getJsonName().equals(key) || f.getName().equals(key)) {
                return f;
            }
        }
        return null;
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
