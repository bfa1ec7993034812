fn main() -> std::process::ExitCode {
    cantina_notify::cli::main()
}
