package io.moemesh.cli;

import picocli.CommandLine;

final class VersionProvider implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
        String v = Main.class.getPackage().getImplementationVersion();
        return new String[] {"moemesh " + (v == null ? "dev" : v) + " (Java " + Runtime.version() + ")"};
    }
}
