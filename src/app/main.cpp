#include "app/app.hpp"

int main(int argc, char** argv) { return atrium::app::run(argc, argv); }
